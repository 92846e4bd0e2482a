// `sandfsd mount --backend dual`: --a, --b, --b-readonly, --policy.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/options.hpp"

using namespace sandfs;
using namespace sandfs::cli;

namespace {

Command parse_mount(std::vector<std::string_view> args) {
  args.insert(args.begin(), "mount");
  return parse_command_line(args);
}

}  // namespace

TEST_CASE("dual mount flags parse into the two sides and the policy", "[cli][dual]") {
  Command c =
      parse_mount({"--backend", "dual", "--a", "memfs:capacity=64M", "--b", "passthrough:/srv/base",
                   "--b-readonly", "--policy", "merge-a-precedence", "/mnt"});
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::mount);
  const MountCommand& m = c.mount;
  CHECK(m.backend == Backend::dual);
  REQUIRE(m.dual.a);
  CHECK(m.dual.a->kind == DualSide::Kind::memfs);
  CHECK(*m.dual.a->capacity_bytes == 64u << 20);
  REQUIRE(m.dual.b);
  CHECK(m.dual.b->kind == DualSide::Kind::passthrough);
  CHECK(m.dual.b->root == "/srv/base");
  CHECK(m.dual.b_readonly);
  CHECK(m.dual.policy == "merge-a-precedence");
  CHECK(m.cache == CachePolicy::auto_);
  CHECK(to_string(m.backend) == "dual");
}

TEST_CASE("dual mount defaults to read-b-write-a and a passthrough upper", "[cli][dual]") {
  Command c = parse_mount({"--backend=dual", "--a=passthrough:/up", "--b=passthrough:/low", "/m"});
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::mount);
  CHECK(c.mount.dual.policy == "read-b-write-a");
  CHECK(c.mount.dual.a->kind == DualSide::Kind::passthrough);
  CHECK_FALSE(c.mount.dual.b_readonly);
}

TEST_CASE("dual mount errors name the flag and say what is wrong", "[cli][dual]") {
  auto error_of = [](std::vector<std::string_view> args) {
    Command c = parse_mount(std::move(args));
    REQUIRE(c.kind == Command::Kind::error);
    return c.error;
  };
  CHECK_THAT(error_of({"--backend", "dual", "--a", "memfs", "/m"}), Catch::Contains("--b SPEC"));
  CHECK_THAT(error_of({"--backend", "dual", "--a", "zfs", "--b", "passthrough:/x", "/m"}),
             Catch::Contains("not memfs[:capacity=SIZE] or passthrough:DIR"));
  CHECK_THAT(error_of({"--backend", "dual", "--a", "memfs:size=1G", "--b", "passthrough:/x", "/m"}),
             Catch::Contains("capacity=SIZE"));
  CHECK_THAT(error_of({"--backend", "dual", "--a", "passthrough:", "--b", "passthrough:/x", "/m"}),
             Catch::Contains("needs a directory"));
  CHECK_THAT(error_of({"--backend", "dual", "--a", "memfs", "--b", "memfs", "/m"}),
             Catch::Contains("--b must be passthrough:DIR"));
  CHECK_THAT(error_of({"--backend", "dual", "--a", "memfs", "--b", "passthrough:/x", "--policy",
                       "b-first", "/m"}),
             Catch::Contains("unknown policy 'b-first'"));
  CHECK_THAT(error_of({"--backend", "memfs", "--a", "memfs", "/m"}),
             Catch::Contains("--a is not a flag of --backend memfs"));
  CHECK_THAT(error_of({"--backend", "dual", "--a", "memfs", "--b", "passthrough:/x", "--root", "/y",
                       "/m"}),
             Catch::Contains("--root is not a flag of --backend dual"));
}

TEST_CASE("mount help describes the dual flags", "[cli][dual]") {
  const std::string help = mount_usage_text();
  for (const char* flag : {"--a SPEC", "--b SPEC", "--b-readonly", "--policy NAME",
                           "read-b-write-a", "a-only", "a-fallback-b", "merge-a-precedence"}) {
    INFO(flag);
    CHECK_THAT(help, Catch::Contains(flag));
  }
}
