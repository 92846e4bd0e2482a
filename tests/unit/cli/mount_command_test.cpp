// make_backend(): the command line turned into a backend, and start-up failures turned into one
// line for a person (sandfsd prints it and exits 1).
#include "cli/mount_command.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "backends/passthrough/passthrough.hpp"
#include "cli/options.hpp"

using namespace sandfs;
using namespace sandfs::cli;

namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/sandfs-cli-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

MountCommand passthrough_command(const std::string& root) {
  MountCommand c;
  c.backend = Backend::passthrough;
  c.mountpoint = "/mnt/unused";
  c.passthrough.root = root;
  c.cache = CachePolicy::auto_;
  return c;
}

std::string error_of(const MountCommand& c) {
  const BackendOrError made = make_backend(c);
  CHECK(made.fs == nullptr);
  CHECK_FALSE(made.error.empty());
  CHECK(made.error.find('\n') == std::string::npos);
  return made.error;
}

}  // namespace

TEST_CASE("make_backend builds passthrough with every flag passed on", "[cli][passthrough]") {
  TempDir dir;
  MountCommand c = passthrough_command(dir.path);
  c.passthrough.stat_virtualization = StatVirtualization::relaxed;
  c.passthrough.host_permissions = HostPermissions::mirror;
  c.passthrough.quota_bytes = 1 << 20;
  c.passthrough.stat_xattr = std::string(passthrough::msb_stat_xattr);
  c.cache = CachePolicy::always;
  c.writeback = true;
  const BackendOrError made = make_backend(c);
  INFO(made.error);
  REQUIRE(made.fs != nullptr);
  const auto fs = std::dynamic_pointer_cast<passthrough::PassthroughFs>(made.fs);
  REQUIRE(fs != nullptr);
  const passthrough::PassthroughConfig& cfg = fs->config();
  CHECK(cfg.root == dir.path);
  CHECK(cfg.stat_virtualization == StatVirtualization::relaxed);
  CHECK(cfg.host_permissions == HostPermissions::mirror);
  CHECK(cfg.quota_bytes == 1u << 20);
  CHECK(cfg.stat_xattr == passthrough::msb_stat_xattr);
  CHECK(cfg.cache == CachePolicy::always);
  CHECK(cfg.writeback);
  CHECK_FALSE(cfg.readonly);
  CHECK_FALSE(cfg.follow_root_symlinks);
}

TEST_CASE("make_backend: passthrough defaults are the backend's", "[cli][passthrough]") {
  TempDir dir;
  const std::vector<std::string_view> args = {"mount",  "--backend",  "passthrough", "--root",
                                              dir.path, "--readonly", "/mnt/x"};
  const Command cmd = parse_command_line(args);
  REQUIRE(cmd.kind == Command::Kind::mount);
  const BackendOrError made = make_backend(cmd.mount);
  INFO(made.error);
  REQUIRE(made.fs != nullptr);
  const auto& cfg = std::dynamic_pointer_cast<passthrough::PassthroughFs>(made.fs)->config();
  const passthrough::PassthroughConfig defaults;
  CHECK(cfg.stat_virtualization == defaults.stat_virtualization);
  CHECK(cfg.host_permissions == defaults.host_permissions);
  CHECK(cfg.stat_xattr == defaults.stat_xattr);
  CHECK(cfg.cache == defaults.cache);
  CHECK_FALSE(cfg.quota_bytes);
  CHECK(cfg.readonly);
  // The help says what the defaults are.
  CHECK_THAT(mount_usage_text(), Catch::Contains(std::string(passthrough::default_stat_xattr)));
}

TEST_CASE("make_backend: a root that cannot be served is one line naming it",
          "[cli][passthrough]") {
  TempDir dir;
  CHECK_THAT(error_of(passthrough_command(dir.path + "/missing")),
             Catch::Contains(dir.path + "/missing") && Catch::Contains("does not exist"));
  const std::string file = dir.path + "/file";
  REQUIRE(::close(::creat(file.c_str(), 0644)) == 0);
  CHECK_THAT(error_of(passthrough_command(file)), Catch::Contains("not a directory"));
  const std::string link = dir.path + "/link";
  REQUIRE(::symlink(dir.path.c_str(), link.c_str()) == 0);
  CHECK_THAT(error_of(passthrough_command(link)),
             Catch::Contains("symbolic link") && Catch::Contains("--follow-root-symlinks"));
  MountCommand follow = passthrough_command(link);
  follow.passthrough.follow_root_symlinks = true;
  CHECK(make_backend(follow).fs != nullptr);

  // off + mirror: refused with the backend's own message.
  MountCommand c = passthrough_command(dir.path);
  c.passthrough.stat_virtualization = StatVirtualization::off;
  c.passthrough.host_permissions = HostPermissions::mirror;
  CHECK_THAT(error_of(c), Catch::Contains("--stat-virtualization off") &&
                              Catch::Contains("--host-permissions mirror"));
}

TEST_CASE("make_backend builds memfs", "[cli]") {
  MountCommand c;
  c.capacity_bytes = 1 << 20;
  CHECK(make_backend(c).fs != nullptr);
}
