// The sandfsd command line parser.
#include "cli/options.hpp"

#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace sandfs;
using namespace sandfs::cli;

namespace {
Command parse(std::vector<std::string_view> args) {
  return parse_command_line(args);
}

MountCommand mount_ok(std::vector<std::string_view> args) {
  args.insert(args.begin(), "mount");
  Command c = parse(args);
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::mount);
  return c.mount;
}

std::string mount_error(std::vector<std::string_view> args) {
  args.insert(args.begin(), "mount");
  Command c = parse(args);
  REQUIRE(c.kind == Command::Kind::error);
  CHECK_FALSE(c.error.empty());
  return c.error;
}
}  // namespace

TEST_CASE("top-level help / version and errors", "[cli]") {
  CHECK(parse({"--help"}).kind == Command::Kind::help);
  CHECK(parse({"-h"}).kind == Command::Kind::help);
  CHECK(parse({"--version"}).kind == Command::Kind::version);
  CHECK(parse({"mount", "--help"}).kind == Command::Kind::mount_help);
  CHECK(parse({"mount", "--backend", "memfs", "-h", "/mnt"}).kind == Command::Kind::mount_help);
  CHECK(parse({}).kind == Command::Kind::error);
  CHECK_THAT(parse({"frobnicate"}).error, Catch::Contains("unknown command 'frobnicate'"));
  CHECK_THAT(parse({"--frob"}).error, Catch::Contains("unknown flag '--frob'"));
  CHECK_THAT(version_text(), Catch::StartsWith("sandfsd 0.1.0"));
}

TEST_CASE("mount defaults", "[cli]") {
  const MountCommand m = mount_ok({"/mnt/x"});
  CHECK(m.mountpoint == "/mnt/x");
  CHECK(m.backend == Backend::memfs);
  CHECK_FALSE(m.capacity_bytes);
  CHECK_FALSE(m.max_inodes);
  CHECK(m.cache == CachePolicy::always);
  CHECK_FALSE(m.writeback);
  CHECK(m.threads == 2);
  CHECK(m.log_level == log::Level::info);
  CHECK(m.allow_other);
  CHECK(m.default_permissions);
  CHECK(m.max_write == 1u << 20);
  CHECK_FALSE(m.ready_fd);
}

TEST_CASE("mount flags in both spellings", "[cli]") {
  const MountCommand m =
      mount_ok({"--backend", "memfs", "--capacity", "64MiB", "--max-inodes=10000", "--cache",
                "never", "--writeback", "--threads=4", "--log-level", "debug", "--no-allow-other",
                "--max-write", "128K", "--ready-fd", "9", "/mnt/y"});
  CHECK(m.mountpoint == "/mnt/y");
  CHECK(m.capacity_bytes == 64ull << 20);
  CHECK(m.max_inodes == 10000u);
  CHECK(m.cache == CachePolicy::never);
  CHECK(m.writeback);
  CHECK(m.threads == 4);
  CHECK(m.log_level == log::Level::debug);
  CHECK_FALSE(m.allow_other);
  CHECK(m.max_write == 128u * 1024);
  CHECK(m.ready_fd == 9);

  CHECK(mount_ok({"--capacity=1G", "/m"}).capacity_bytes == 1ull << 30);
  CHECK(mount_ok({"--capacity", "512k", "/m"}).capacity_bytes == 512u * 1024);
  CHECK(mount_ok({"--cache=auto", "/m"}).cache == CachePolicy::auto_);
  CHECK(mount_ok({"/m", "--threads", "1"}).threads == 1);  // flags may follow the mountpoint
  CHECK(mount_ok({"--", "--odd-dir"}).mountpoint == "--odd-dir");
}

TEST_CASE("mount rejects bad values naming the flag", "[cli]") {
  CHECK_THAT(mount_error({"--capacity", "0", "/m"}),
             Catch::Contains("--capacity") && Catch::Contains("greater than zero"));
  CHECK_THAT(mount_error({"--capacity", "lots", "/m"}), Catch::Contains("--capacity"));
  CHECK_THAT(mount_error({"--capacity", "1.5G", "/m"}), Catch::Contains("not a size"));
  CHECK_THAT(mount_error({"--capacity", "99999999T", "/m"}), Catch::Contains("too large"));
  CHECK_THAT(mount_error({"--max-inodes", "0", "/m"}), Catch::Contains("--max-inodes"));
  CHECK_THAT(mount_error({"--max-inodes", "1k", "/m"}), Catch::Contains("whole number"));
  CHECK_THAT(mount_error({"--cache", "sometimes", "/m"}), Catch::Contains("'sometimes'"));
  CHECK_THAT(mount_error({"--threads", "0", "/m"}), Catch::Contains("between 1 and 64"));
  CHECK_THAT(mount_error({"--threads", "65", "/m"}), Catch::Contains("between 1 and 64"));
  CHECK_THAT(mount_error({"--log-level", "loud", "/m"}), Catch::Contains("--log-level"));
  CHECK_THAT(mount_error({"--max-write", "5000", "/m"}), Catch::Contains("multiple of 4 KiB"));
  CHECK_THAT(mount_error({"--max-write", "2M", "/m"}), Catch::Contains("--max-write"));
  CHECK_THAT(mount_error({"--ready-fd", "-1", "/m"}), Catch::Contains("--ready-fd"));
  CHECK_THAT(mount_error({"/m", "--threads"}), Catch::Contains("--threads: needs a value"));
  CHECK_THAT(mount_error({"--writeback=yes", "/m"}), Catch::Contains("takes no value"));
}

TEST_CASE("mount rejects unknown flags / backends and stray arguments", "[cli]") {
  CHECK_THAT(mount_error({"--frob", "/m"}), Catch::Contains("unknown flag '--frob'"));
  CHECK_THAT(mount_error({"-x", "/m"}), Catch::Contains("unknown flag '-x'"));
  CHECK_THAT(mount_error({"--backend", "zfs", "/m"}), Catch::Contains("unknown backend 'zfs'"));
  CHECK_THAT(mount_error({"--backend=dual", "/m"}), Catch::Contains("needs --a SPEC and --b SPEC"));
  CHECK_THAT(mount_error({}), Catch::Contains("missing MOUNTPOINT"));
  CHECK_THAT(mount_error({"/a", "/b"}), Catch::Contains("unexpected argument '/b'"));
}

TEST_CASE("help texts mention every flag with its default", "[cli]") {
  const std::string help = mount_usage_text();
  for (const char* flag :
       {"--backend", "--capacity", "--max-inodes", "--cache", "--writeback", "--threads",
        "--log-level", "--no-allow-other", "--max-write", "--ready-fd", "--help"}) {
    INFO(flag);
    CHECK_THAT(help, Catch::Contains(flag));
  }
  CHECK_THAT(help, Catch::Contains("default: 2"));
  CHECK_THAT(help, Catch::Contains("default: always"));
  CHECK_THAT(usage_text(), Catch::Contains("mount"));
}

TEST_CASE("passthrough defaults", "[cli][passthrough]") {
  const MountCommand m = mount_ok({"--backend", "passthrough", "--root", "/srv/share", "/mnt/p"});
  CHECK(m.backend == Backend::passthrough);
  CHECK(m.mountpoint == "/mnt/p");
  CHECK(m.passthrough.root == "/srv/share");
  CHECK(m.passthrough.stat_virtualization == StatVirtualization::strict);
  CHECK(m.passthrough.host_permissions == HostPermissions::private_);
  CHECK_FALSE(m.passthrough.readonly);
  CHECK_FALSE(m.passthrough.quota_bytes);
  CHECK_FALSE(m.passthrough.stat_xattr);
  CHECK_FALSE(m.passthrough.follow_root_symlinks);
  CHECK_FALSE(m.writeback);
  // The host can change the directory underneath: no hour-long caching unless asked for.
  CHECK(m.cache == CachePolicy::auto_);
  CHECK(to_string(m.backend) == "passthrough");
}

TEST_CASE("passthrough flags in both spellings and any order", "[cli][passthrough]") {
  const MountCommand m = mount_ok(
      {"/mnt/p", "--root=/srv/a", "--stat-virtualization", "relaxed", "--host-permissions=mirror",
       "--readonly", "--quota", "10GiB", "--stat-xattr", "user.msb.override_stat", "--cache",
       "always", "--writeback", "--follow-root-symlinks", "--backend=passthrough"});
  CHECK(m.passthrough.root == "/srv/a");
  CHECK(m.passthrough.stat_virtualization == StatVirtualization::relaxed);
  CHECK(m.passthrough.host_permissions == HostPermissions::mirror);
  CHECK(m.passthrough.readonly);
  CHECK(m.passthrough.quota_bytes == 10ull << 30);
  CHECK(m.passthrough.stat_xattr == "user.msb.override_stat");
  CHECK(m.cache == CachePolicy::always);
  CHECK(m.writeback);
  CHECK(m.passthrough.follow_root_symlinks);

  const auto pt = [](std::vector<std::string_view> more) {
    std::vector<std::string_view> args = {"--backend", "passthrough", "--root", "r"};
    args.insert(args.end(), more.begin(), more.end());
    args.push_back("/m");
    return mount_ok(args);
  };
  CHECK(pt({"--stat-virtualization=off"}).passthrough.stat_virtualization ==
        StatVirtualization::off);
  CHECK(pt({"--stat-virtualization", "strict"}).passthrough.stat_virtualization ==
        StatVirtualization::strict);
  CHECK(pt({"--host-permissions", "private"}).passthrough.host_permissions ==
        HostPermissions::private_);
  CHECK(pt({"--cache", "never"}).cache == CachePolicy::never);
  CHECK(pt({"--quota=512k"}).passthrough.quota_bytes == 512u * 1024);
  CHECK(pt({"--root", "second"}).passthrough.root == "second");  // the last one wins
  CHECK(pt({}).passthrough.root == "r");                         // relative: as given
  CHECK(to_string(StatVirtualization::relaxed) == "relaxed");
  CHECK(to_string(HostPermissions::mirror) == "mirror");
  // memfs keeps its own default cache policy.
  CHECK(mount_ok({"--backend", "memfs", "/m"}).cache == CachePolicy::always);
}

TEST_CASE("passthrough errors name the flag", "[cli][passthrough]") {
  CHECK_THAT(mount_error({"--backend", "passthrough", "/m"}),
             Catch::Contains("--backend passthrough needs --root DIR"));
  CHECK_THAT(mount_error({"--backend", "passthrough", "--root", "", "/m"}),
             Catch::Contains("--root: needs a directory"));
  CHECK_THAT(mount_error({"--backend", "passthrough", "--root"}),
             Catch::Contains("--root: needs a value"));
  const auto pt_error = [](std::vector<std::string_view> more) {
    std::vector<std::string_view> args = {"--backend", "passthrough", "--root", "/r"};
    args.insert(args.end(), more.begin(), more.end());
    args.push_back("/m");
    return mount_error(args);
  };
  CHECK_THAT(pt_error({"--stat-virtualization", "loose"}),
             Catch::Contains("--stat-virtualization") && Catch::Contains("'loose'") &&
                 Catch::Contains("strict, relaxed or off"));
  CHECK_THAT(pt_error({"--stat-virtualization", "Strict"}), Catch::Contains("'Strict'"));
  CHECK_THAT(pt_error({"--host-permissions", "public"}), Catch::Contains("--host-permissions") &&
                                                             Catch::Contains("'public'") &&
                                                             Catch::Contains("private or mirror"));
  CHECK_THAT(pt_error({"--quota", "0"}),
             Catch::Contains("--quota") && Catch::Contains("greater than zero"));
  CHECK_THAT(pt_error({"--quota", "lots"}), Catch::Contains("--quota"));
  CHECK_THAT(pt_error({"--quota", "1.5G"}), Catch::Contains("not a size"));
  CHECK_THAT(pt_error({"--cache", "sometimes"}),
             Catch::Contains("--cache") && Catch::Contains("'sometimes'"));
  CHECK_THAT(pt_error({"--readonly=yes"}), Catch::Contains("--readonly: takes no value"));
  CHECK_THAT(pt_error({"--follow-root-symlinks=1"}), Catch::Contains("takes no value"));
  CHECK_THAT(pt_error({"--stat-xattr", ""}), Catch::Contains("--stat-xattr"));
  CHECK_THAT(pt_error({"--stat-xattr", "override"}),
             Catch::Contains("--stat-xattr") && Catch::Contains("NAMESPACE.NAME"));
  CHECK_THAT(pt_error({"--stat-xattr", ".x"}), Catch::Contains("NAMESPACE.NAME"));
  CHECK_THAT(pt_error({"--stat-xattr", "user."}), Catch::Contains("NAMESPACE.NAME"));
  CHECK_THAT(pt_error({"--stat-xattr", std::string(300, 'a')}), Catch::Contains("255"));
  CHECK_THAT(pt_error({"--stat-xattr", "system.posix_acl_access"}), Catch::Contains("system."));
  CHECK_THAT(pt_error({"--stat-virtualization", "off", "--stat-xattr", "user.x"}),
             Catch::Contains("--stat-xattr") && Catch::Contains("off"));
  CHECK_THAT(pt_error({"--capacity", "1G"}),
             Catch::Contains("--capacity is not a flag of --backend passthrough"));
  CHECK_THAT(pt_error({"--max-inodes", "10"}), Catch::Contains("--max-inodes"));
}

TEST_CASE("passthrough flags are refused with memfs", "[cli][passthrough]") {
  for (std::vector<std::string_view> args : {std::vector<std::string_view>{"--root", "/r", "/m"},
                                             {"--readonly", "/m"},
                                             {"--quota", "1G", "/m"},
                                             {"--stat-virtualization", "off", "/m"},
                                             {"--host-permissions", "mirror", "/m"},
                                             {"--stat-xattr", "user.x", "/m"},
                                             {"--follow-root-symlinks", "/m"},
                                             {"--backend", "memfs", "--readonly", "/m"}}) {
    INFO(args.front());
    CHECK_THAT(mount_error(args), Catch::Contains("is not a flag of --backend memfs"));
  }
  // Order does not matter: the backend may come last.
  CHECK_THAT(mount_error({"--root", "/r", "/m", "--backend", "memfs"}),
             Catch::Contains("--root is not a flag of --backend memfs"));
}

TEST_CASE("help text covers every passthrough flag with its default", "[cli][passthrough]") {
  const std::string help = mount_usage_text();
  for (const char* text :
       {"--root DIR", "--stat-virtualization MODE", "default: strict", "--host-permissions MODE",
        "default: private", "--readonly", "default: read-write", "--quota SIZE",
        "default: no quota", "--stat-xattr NAME", "--follow-root-symlinks", "auto for passthrough",
        "strict", "relaxed", "off", "mirror"}) {
    INFO(text);
    CHECK_THAT(help, Catch::Contains(text));
  }
  CHECK_THAT(help, !Catch::Contains("a host directory (not implemented yet)"));
}

namespace {
Command vhost(std::vector<std::string_view> args) {
  args.insert(args.begin(), "vhost-user");
  return parse(args);
}
}  // namespace

TEST_CASE("vhost-user: sockets / queues / backend flags shared with mount", "[cli][vhost]") {
  Command c = vhost({"--socket-path", "/tmp/a.sock", "--socket-path=/tmp/b.sock", "--queues", "4",
                     "--backend", "memfs", "--capacity", "64M", "--threads", "3"});
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::vhost_user);
  CHECK(c.mount.socket_paths == std::vector<std::string>{"/tmp/a.sock", "/tmp/b.sock"});
  CHECK(c.mount.queues == 4);
  CHECK(c.mount.backend == Backend::memfs);
  CHECK(c.mount.capacity_bytes == 64u << 20);
  CHECK(c.mount.threads == 3);
  CHECK(c.mount.cache == CachePolicy::always);

  // virtiofsd's names: --shared-dir is passthrough with that root; --cache as usual.
  c = vhost({"--socket-path", "/tmp/a.sock", "--shared-dir", "/srv/x", "--cache=never"});
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::vhost_user);
  CHECK(c.mount.backend == Backend::passthrough);
  CHECK(c.mount.passthrough.root == "/srv/x");
  CHECK(c.mount.cache == CachePolicy::never);
  c = vhost({"--socket-path", "/tmp/a.sock", "--shared-dir", "/srv/x"});
  CHECK(c.mount.cache == CachePolicy::auto_);

  CHECK(vhost({"--help"}).kind == Command::Kind::vhost_user_help);
  CHECK(vhost_user_usage_text().find("--socket-path") != std::string::npos);
  CHECK(usage_text().find("vhost-user") != std::string::npos);
}

TEST_CASE("vhost-user: errors name what is wrong", "[cli][vhost]") {
  auto error_of = [](std::vector<std::string_view> args) {
    Command c = vhost(std::move(args));
    REQUIRE(c.kind == Command::Kind::error);
    return c.error;
  };
  CHECK_THAT(error_of({"--backend", "memfs"}), Catch::Contains("--socket-path"));
  CHECK_THAT(error_of({"--socket-path", "/s", "/mnt"}), Catch::Contains("unexpected argument"));
  CHECK_THAT(error_of({"--socket-path", "/s", "--queues", "0"}), Catch::Contains("--queues"));
  CHECK_THAT(error_of({"--socket-path", "/s", "--queues", "65"}), Catch::Contains("--queues"));
  CHECK_THAT(error_of({"--socket-path", std::string(108, 'x')}), Catch::Contains("107 bytes"));
  CHECK_THAT(error_of({"--socket-path", "/s", "--no-allow-other"}),
             Catch::Contains("sandfsd mount"));
  CHECK_THAT(error_of({"--socket-path", "/s", "--backend", "passthrough"}),
             Catch::Contains("--root"));
  CHECK_THAT(error_of({"--socket-path", "/s", "--root", "/x"}),
             Catch::Contains("sandfsd vhost-user: --root"));
  // mount does not take vhost-user's flags.
  Command m = parse({"mount", "--socket-path", "/s", "/mnt"});
  CHECK(m.kind == Command::Kind::error);
}

namespace {
ServeCommand serve_ok(std::vector<std::string_view> args) {
  args.insert(args.begin(), "serve");
  Command c = parse(args);
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::serve);
  return c.serve;
}

std::string serve_error(std::vector<std::string_view> args) {
  args.insert(args.begin(), "serve");
  Command c = parse(args);
  REQUIRE(c.kind == Command::Kind::error);
  return c.error;
}
}  // namespace

TEST_CASE("serve defaults", "[cli]") {
  const ServeCommand s = serve_ok({});
  CHECK(s.data_dir.empty());
  CHECK(s.listen == "127.0.0.1:7270");
  CHECK(s.unix_socket.empty());
  CHECK(s.threads == 2);
  CHECK(s.log_level == log::Level::info);
  CHECK(parse({"serve", "--help"}).kind == Command::Kind::serve_help);
  CHECK(parse({"serve", "--listen", "1.2.3.4:1", "-h"}).kind == Command::Kind::serve_help);
  CHECK_THAT(usage_text(), Catch::Contains("serve"));
  CHECK_THAT(serve_usage_text(), Catch::Contains("--data-dir"));
}

TEST_CASE("serve flags", "[cli]") {
  const ServeCommand s =
      serve_ok({"--data-dir", "/srv/sandfs", "--listen=0.0.0.0:8080", "--unix-socket",
                "/run/sandfs.sock", "--threads", "4", "--log-level=debug"});
  CHECK(s.data_dir == "/srv/sandfs");
  CHECK(s.listen == "0.0.0.0:8080");
  CHECK(s.unix_socket == "/run/sandfs.sock");
  CHECK(s.threads == 4);
  CHECK(s.log_level == log::Level::debug);
  CHECK(serve_ok({"--listen", "[::1]:7270"}).listen == "[::1]:7270");
  const ServeCommand limits = serve_ok({"--max-connections", "8", "--max-upload=1G"});
  CHECK(limits.max_connections == 8);
  CHECK(limits.max_upload_bytes == uint64_t{1} << 30);
  CHECK(serve_ok({}).max_connections == 512);
  CHECK(serve_ok({}).max_upload_bytes == uint64_t{16} << 30);
  CHECK(serve_ok({"--listen", "none", "--unix-socket", "/s"}).listen.empty());
  CHECK_FALSE(serve_ok({}).ready_fd);
  CHECK(serve_ok({"--ready-fd", "9"}).ready_fd == 9);
  CHECK(serve_ok({}).msb_prefix == "/msb");
  CHECK(serve_ok({}).msb_default_volume.empty());
  CHECK(serve_ok({"--msb-prefix", "none"}).msb_prefix.empty());
  CHECK(serve_ok({"--msb-prefix=/api/msb"}).msb_prefix == "/api/msb");
  CHECK(serve_ok({"--msb-default-volume", "shared"}).msb_default_volume == "shared");
}

TEST_CASE("serve errors name the flag", "[cli]") {
  CHECK_THAT(serve_error({"--listen", "7270"}), Catch::Contains("--listen: needs HOST:PORT"));
  CHECK_THAT(serve_error({"--listen", "h:99999"}), Catch::Contains("bad port"));
  CHECK_THAT(serve_error({"--listen", "h:"}), Catch::Contains("--listen"));
  CHECK_THAT(serve_error({"--listen", "none"}), Catch::Contains("needs --unix-socket"));
  CHECK_THAT(serve_error({"--threads", "0"}), Catch::Contains("--threads: must be between"));
  CHECK_THAT(serve_error({"--threads"}), Catch::Contains("--threads: needs a value"));
  CHECK_THAT(serve_error({"--log-level", "loud"}), Catch::Contains("unknown level"));
  CHECK_THAT(serve_error({"--data-dir="}), Catch::Contains("--data-dir: needs a directory"));
  CHECK_THAT(serve_error({"--max-connections", "0"}), Catch::Contains("--max-connections"));
  CHECK_THAT(serve_error({"--max-upload", "0"}), Catch::Contains("--max-upload"));
  CHECK_THAT(serve_error({"--max-upload", "lots"}), Catch::Contains("--max-upload"));
  CHECK_THAT(serve_error({"--ready-fd", "-1"}), Catch::Contains("--ready-fd"));
  CHECK_THAT(serve_error({"--msb-prefix", "msb"}), Catch::Contains("--msb-prefix"));
  CHECK_THAT(serve_error({"--msb-prefix", "/msb/"}), Catch::Contains("--msb-prefix"));
  CHECK_THAT(serve_error({"--msb-prefix", "/v1"}), Catch::Contains("native API"));
  CHECK_THAT(serve_error({"--msb-prefix", "/"}), Catch::Contains("--msb-prefix"));
  CHECK_THAT(serve_error({"--msb-default-volume", "../x"}),
             Catch::Contains("--msb-default-volume"));
  CHECK_THAT(serve_error({"--msb-default-volume"}), Catch::Contains("needs a value"));
  CHECK_THAT(serve_error({"--root", "/x"}), Catch::Contains("unknown flag '--root'"));
  CHECK_THAT(serve_error({"extra"}), Catch::Contains("unexpected argument 'extra'"));
  const std::string long_path(120, 'x');
  CHECK_THAT(serve_error({"--unix-socket", long_path}), Catch::Contains("at most 107 bytes"));
}

TEST_CASE("serve default data dir", "[cli]") {
  const std::string dir = default_data_dir();
  if (::geteuid() == 0) {
    CHECK(dir == "/var/lib/sandfs");
  } else {
    CHECK_THAT(dir, Catch::EndsWith("/sandfs"));
  }
}
