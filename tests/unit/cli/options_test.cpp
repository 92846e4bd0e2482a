// The sandfsd command line parser.
#include "cli/options.hpp"

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
  CHECK_THAT(mount_error({"--backend", "passthrough", "/m"}),
             Catch::Contains("not implemented yet"));
  CHECK_THAT(mount_error({"--backend=dual", "/m"}), Catch::Contains("not implemented yet"));
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
