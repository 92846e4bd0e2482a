// A DualFs whose B is itself a DualFs: the outer mount sees the inner one's merged view, copies
// up out of it without changing either inner backend, and keeps its own whiteouts.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

struct Nested {
  std::shared_ptr<Filesystem> inner_upper;
  std::shared_ptr<Filesystem> inner_lower;
  std::shared_ptr<Filesystem> inner;

  Nested() {
    memfs::MemFsConfig mc;
    mc.cache = CachePolicy::never;
    inner_upper = memfs::make_memfs(mc);
    inner_lower = memfs::make_memfs(mc);
    DualFsConfig config;
    config.a = inner_upper;
    config.b = inner_lower;
    config.policy = read_b_write_a_policy();
    config.cache = CachePolicy::never;
    inner = make_dualfs(config);
  }
};

}  // namespace

TEST_CASE("a DualFs over a DualFs sees the inner merged view and copies up out of it",
          "[dualfs][nested]") {
  Nested n;
  // The outer fixture initialises the inner DualFs (and through it both MemFs) once.
  DualFixture f(read_b_write_a_policy(), 4096, nullptr, WhiteoutStorage::memory, n.inner);
  Backend upper{n.inner_upper, {}};
  Backend lower{n.inner_lower, {}};
  lower.put("base/x", "lower data");
  lower.put("base/gone", "g");
  upper.put("mid", "middle");
  upper.put("base/y", "inner upper");

  CHECK(f.names("") == std::vector<std::string>{"base", "mid"});
  CHECK(f.names("base") == std::vector<std::string>{"gone", "x", "y"});
  CHECK(*f.read("base/x") == "lower data");
  CHECK(*f.read("mid") == "middle");

  // A write copies the file up into the outer A; neither inner backend changes.
  REQUIRE(f.write("base/x", "LOWER", O_WRONLY).ok());
  CHECK(*f.read("base/x") == "LOWER data");
  CHECK(*f.A.content("base/x") == "LOWER data");
  CHECK(*lower.content("base/x") == "lower data");
  CHECK_FALSE(upper.exists("base/x"));
  CHECK(f.fs->copy_ups() == 1);

  // Removing names the inner mount shows hides them in the outer one only.
  REQUIRE(f.unlink("mid").ok());
  REQUIRE(f.unlink("base/gone").ok());
  CHECK(f.lookup("mid").error() == ENOENT);
  CHECK(f.lookup("base/gone").error() == ENOENT);
  CHECK(f.names("") == std::vector<std::string>{"base"});
  CHECK(f.names("base") == std::vector<std::string>{"x", "y"});
  CHECK(*upper.content("mid") == "middle");
  CHECK(*lower.content("base/gone") == "g");

  // New files land in the outer A.
  REQUIRE(f.create("base/new", "fresh").ok());
  CHECK(*f.A.content("base/new") == "fresh");
  CHECK_FALSE(upper.exists("base/new"));
  CHECK_FALSE(lower.exists("base/new"));
}
