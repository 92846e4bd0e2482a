// Mount specs: every validation rule of mount_manager.hpp, its code and the words of its message
// (a person must be able to tell which field to change). No kernel: host paths are temp dirs.
#include "volumes/mount_spec.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

using namespace sandfs::volumes;
namespace fs = std::filesystem;
namespace pt = sandfs::passthrough;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "sandfs-mountspec-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

MountSpec named(std::string volume = "vol1") {
  MountSpec s;
  s.sandbox_id = "sb-1";
  s.source = SourceKind::named;
  s.volume = std::move(volume);
  return s;
}

// The error of `spec`, which must fail.
Error error_of(const MountSpec& spec) {
  Outcome<Done> r = validate_mount_spec(spec);
  REQUIRE_FALSE(r.ok());
  return r.error();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

VolumeInfo stored(VolumeKind kind = VolumeKind::dir) {
  VolumeInfo v;
  v.id = "0b8e5c5e-6f8c-4a57-9a43-6b7f0c1b2a3d";
  v.name = "vol1";
  v.kind = kind;
  v.quota_bytes = 1 << 20;
  v.labels = {{"team", "a"}, {"tier", "gold"}};
  return v;
}

}  // namespace

TEST_CASE("a plain named mount over vhost-user is valid", "[mount_spec]") {
  CHECK(validate_mount_spec(named()).ok());
}

TEST_CASE("sandbox ids are 1 to 128 of letters digits dot underscore dash", "[mount_spec]") {
  CHECK(valid_sandbox_id("sb.1_x-Y"));
  CHECK(valid_sandbox_id(std::string(128, 'a')));
  CHECK_FALSE(valid_sandbox_id(""));
  CHECK_FALSE(valid_sandbox_id(std::string(129, 'a')));
  CHECK_FALSE(valid_sandbox_id("sb/1"));
  CHECK_FALSE(valid_sandbox_id("sb 1"));

  MountSpec s = named();
  s.sandbox_id = "";
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "sandbox_id is required"));
  s.sandbox_id = "a/b";
  e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "sandbox_id \"a/b\" is invalid"));
}

TEST_CASE("bind needs an absolute existing directory", "[mount_spec]") {
  TempDir tmp;
  MountSpec s;
  s.sandbox_id = "sb";
  s.source = SourceKind::bind;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "needs bind_path"));

  s.bind_path = "relative/dir";
  e = error_of(s);
  CHECK(contains(e.message, "bind_path \"relative/dir\" is not an absolute path"));

  s.bind_path = (tmp.path / "missing").string();
  e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "does not exist"));

  const fs::path file = tmp.path / "file";
  std::ofstream(file) << "x";
  s.bind_path = file.string();
  e = error_of(s);
  CHECK(contains(e.message, "is not a directory"));

  s.bind_path = tmp.path.string();
  CHECK(validate_mount_spec(s).ok());
  s.quota_bytes = 0;
  e = error_of(s);
  CHECK(contains(e.message, "quota_bytes must be greater than 0"));
  s.quota_bytes = 4096;
  CHECK(validate_mount_spec(s).ok());
}

TEST_CASE("named volume names are checked", "[mount_spec]") {
  Error e = error_of(named(""));
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "needs volume"));
  e = error_of(named(".hidden"));
  CHECK(e.code == ErrorCode::invalid_name);
  CHECK(contains(e.message, "volume name \".hidden\" is invalid"));
  e = error_of(named(std::string(129, 'v')));
  CHECK(e.code == ErrorCode::invalid_name);
}

TEST_CASE("disk sources and disk volume creation are unsupported", "[mount_spec]") {
  MountSpec s;
  s.sandbox_id = "sb";
  s.source = SourceKind::disk;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::unsupported);
  CHECK(contains(e.message, "disk mounts are not served yet"));

  s = named();
  s.mode = NamedMode::ensure_exists;
  s.create_kind = VolumeKind::disk;
  e = error_of(s);
  CHECK(e.code == ErrorCode::unsupported);
  CHECK(contains(e.message, "disk volumes cannot be mounted yet"));
}

TEST_CASE("tmpfs takes no host policies", "[mount_spec]") {
  MountSpec s;
  s.sandbox_id = "sb";
  s.source = SourceKind::tmpfs;
  s.size_bytes = 1 << 20;
  CHECK(validate_mount_spec(s).ok());
  s.stat_virtualization = pt::StatVirtualization::relaxed;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(contains(e.message, "only valid for bind and named mounts"));
  s.stat_virtualization = pt::StatVirtualization::strict;
  s.host_permissions = pt::HostPermissions::mirror;
  CHECK(error_of(s).code == ErrorCode::invalid_config);
  s.host_permissions = pt::HostPermissions::private_;
  s.size_bytes = 0;
  e = error_of(s);
  CHECK(contains(e.message, "size_bytes must be greater than 0"));
}

TEST_CASE("stat_virtualization off with host_permissions mirror is a contradiction",
          "[mount_spec]") {
  MountSpec s = named();
  s.stat_virtualization = pt::StatVirtualization::off;
  s.host_permissions = pt::HostPermissions::mirror;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(contains(e.message, "contradict"));
  s.host_permissions = pt::HostPermissions::private_;
  CHECK(validate_mount_spec(s).ok());
}

TEST_CASE("fields of another source kind are refused rather than ignored", "[mount_spec]") {
  MountSpec s = named();
  s.quota_bytes = 4096;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(contains(e.message, "quota_bytes is only valid for bind mounts"));
  CHECK(contains(e.message, "source.quota_mib"));

  s = named();
  s.size_bytes = 4096;
  CHECK(
      contains(error_of(s).message, "source.size_mib (size_bytes) is only valid for tmpfs mounts"));

  s = named();
  s.bind_path = "/tmp";
  CHECK(contains(error_of(s).message, "bind_path is only valid for bind mounts"));

  s = named();
  s.create_quota_bytes = 4096;  // mode existing creates nothing
  e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(contains(e.message, "mode create or ensure-exists"));
  s.mode = NamedMode::create;
  CHECK(validate_mount_spec(s).ok());
  s.create_quota_bytes = 0;
  CHECK(contains(error_of(s).message, "source.quota_mib must be greater than 0"));

  MountSpec t;
  t.sandbox_id = "sb";
  t.source = SourceKind::tmpfs;
  t.volume = "vol1";
  CHECK(contains(error_of(t).message, "volume is only valid for named mounts"));
}

TEST_CASE("vhost-user transport fields", "[mount_spec]") {
  MountSpec s = named();
  s.queues = 0;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "queues must be between 1 and 64"));
  s.queues = 65;
  CHECK(error_of(s).code == ErrorCode::invalid_request);
  s.queues = 4;
  CHECK(validate_mount_spec(s).ok());

  s.socket_path = "rel.sock";
  CHECK(contains(error_of(s).message, "socket_path \"rel.sock\" is not an absolute path"));
  s.socket_path = "/" + std::string(120, 's');
  CHECK(contains(error_of(s).message, "a Unix socket path must be shorter than 108"));
  s.socket_path = "/run/sandfs/x.sock";
  CHECK(validate_mount_spec(s).ok());

  s.mountpoint = "/mnt";
  e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(contains(e.message, "mountpoint is only valid for fuse mounts"));
}

TEST_CASE("fuse mounts need an existing empty directory", "[mount_spec]") {
  TempDir tmp;
  MountSpec s = named();
  s.transport = TransportKind::fuse;
  Error e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_request);
  CHECK(contains(e.message, "needs mountpoint"));

  s.mountpoint = (tmp.path / "none").string();
  CHECK(contains(error_of(s).message, "mountpoint " + s.mountpoint + " does not exist"));

  s.mountpoint = tmp.path.string();
  std::ofstream(tmp.path / "a") << "x";
  std::ofstream(tmp.path / "b") << "y";
  e = error_of(s);
  CHECK(contains(e.message, "is not empty (2 entries)"));
  fs::remove(tmp.path / "a");
  fs::remove(tmp.path / "b");
  CHECK(validate_mount_spec(s).ok());

  s.socket_path = "/run/x.sock";
  e = error_of(s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(contains(e.message, "socket_path is only valid for vhost-user mounts"));
}

TEST_CASE("guest_path must be absolute when given", "[mount_spec]") {
  MountSpec s = named();
  s.guest_path = "data";
  CHECK(contains(error_of(s).message, "guest_path \"data\" is not an absolute path"));
  s.guest_path = "/data";
  CHECK(validate_mount_spec(s).ok());
}

TEST_CASE("ensure-exists accepts a volume that matches what was requested", "[mount_spec]") {
  MountSpec s = named();
  s.mode = NamedMode::ensure_exists;
  CHECK(check_ensure_exists(s, stored()).ok());  // nothing requested: anything matches
  s.create_quota_bytes = 1 << 20;
  s.create_labels = {{"team", "a"}};  // a subset of the stored labels
  CHECK(check_ensure_exists(s, stored()).ok());
}

TEST_CASE("ensure-exists names the difference in kind", "[mount_spec]") {
  MountSpec s = named();
  s.mode = NamedMode::ensure_exists;
  Outcome<Done> r = check_ensure_exists(s, stored(VolumeKind::disk));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::invalid_config);
  CHECK(r.error().message ==
        "named volume \"vol1\" already exists as disk, but this mount requested dir");
}

TEST_CASE("ensure-exists names the difference in quota", "[mount_spec]") {
  MountSpec s = named();
  s.mode = NamedMode::ensure_exists;
  s.create_quota_bytes = 2 << 20;
  Outcome<Done> r = check_ensure_exists(s, stored());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::invalid_config);
  CHECK(contains(r.error().message, "with a quota of 1048576 bytes (1 MiB)"));
  CHECK(contains(r.error().message, "requested 2097152 bytes (2 MiB)"));

  VolumeInfo unlimited = stored();
  unlimited.quota_bytes.reset();
  r = check_ensure_exists(s, unlimited);
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message, "already exists without a quota"));
}

TEST_CASE("ensure-exists names a missing or different label", "[mount_spec]") {
  MountSpec s = named();
  s.mode = NamedMode::ensure_exists;
  s.create_labels = {{"owner", "bob"}};
  Outcome<Done> r = check_ensure_exists(s, stored());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == ErrorCode::invalid_config);
  CHECK(contains(r.error().message, "without label \"owner\""));

  s.create_labels = {{"tier", "silver"}};
  r = check_ensure_exists(s, stored());
  REQUIRE_FALSE(r.ok());
  CHECK(contains(r.error().message,
                 "with label tier=\"gold\", but this mount requested "
                 "tier=\"silver\""));
}

TEST_CASE("mount enums have their wire names", "[mount_spec]") {
  CHECK(to_string(NamedMode::ensure_exists) == "ensure-exists");
  CHECK(to_string(TransportKind::vhost_user) == "vhost-user");
  CHECK(to_string(TransportKind::fuse) == "fuse");
  CHECK(to_string(SourceKind::tmpfs) == "tmpfs");
}
