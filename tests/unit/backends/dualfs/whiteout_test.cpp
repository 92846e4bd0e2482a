// Whiteouts and opaque directories: nothing removed from B comes back.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

TEST_CASE("unlinking a B file hides it and leaves B untouched", "[dualfs][whiteout]") {
  DualFixture f;
  f.B.put("d/gone", "x");
  f.B.put("d/kept", "y");
  REQUIRE(f.unlink("d/gone").ok());
  CHECK(f.lookup("d/gone").error() == ENOENT);
  CHECK(f.names("d") == std::vector<std::string>{"kept"});
  CHECK(*f.B.content("d/gone") == "x");
  CHECK(f.unlink("d/gone").error() == ENOENT);
}

TEST_CASE("unlinking a copied-up file never brings the B original back", "[dualfs][whiteout]") {
  // (a-fallback-b never copies up: policy_test.cpp)
  for (auto policy : {read_b_write_a_policy(), merge_a_precedence_policy()}) {
    INFO(policy->name());
    DualFixture f(policy);
    f.B.put("f", "original");
    REQUIRE(f.write("f", "CHANGED").ok());
    CHECK(*f.read("f") == "CHANGEDl");
    REQUIRE(f.unlink("f").ok());
    CHECK(f.lookup("f").error() == ENOENT);
    CHECK(f.names("").empty());
    // And a new file under that name is just the new file.
    REQUIRE(f.create("f", "new").ok());
    CHECK(*f.read("f") == "new");
  }
}

TEST_CASE("rmdir of a merged directory is ENOTEMPTY while B has visible entries",
          "[dualfs][whiteout]") {
  DualFixture f;
  f.B.put("d/lower", "1");
  f.A.put("d/upper", "2");
  CHECK(f.rmdir("d").error() == ENOTEMPTY);
  REQUIRE(f.unlink("d/upper").ok());
  CHECK(f.rmdir("d").error() == ENOTEMPTY);
  REQUIRE(f.unlink("d/lower").ok());
  REQUIRE(f.rmdir("d").ok());
  CHECK(f.lookup("d").error() == ENOENT);
  CHECK(f.B.exists("d/lower"));
  CHECK(f.names("").empty());
}

TEST_CASE("rmdir of a B-only empty directory whites it out", "[dualfs][whiteout]") {
  DualFixture f;
  f.B.mkdirs("empty");
  REQUIRE(f.rmdir("empty").ok());
  CHECK(f.lookup("empty").error() == ENOENT);
  CHECK(f.B.exists("empty"));
}

TEST_CASE("mkdir over a removed B directory makes an opaque directory", "[dualfs][whiteout]") {
  DualFixture f;
  f.B.put("d/old", "1");
  REQUIRE(f.unlink("d/old").ok());
  REQUIRE(f.rmdir("d").ok());
  REQUIRE(f.mkdir("d").ok());
  CHECK(f.names("d").empty());
  CHECK(f.lookup("d/old").error() == ENOENT);
  REQUIRE(f.create("d/new", "n").ok());
  CHECK(f.names("d") == std::vector<std::string>{"new"});
  // An opaque directory is empty for rmdir once its own entries go.
  REQUIRE(f.unlink("d/new").ok());
  REQUIRE(f.rmdir("d").ok());
}

TEST_CASE("creating a name whited out earlier shows only the new object", "[dualfs][whiteout]") {
  DualFixture f;
  f.B.put("x", "lower");
  REQUIRE(f.unlink("x").ok());
  REQUIRE(f.create("x", "upper").ok());
  CHECK(*f.read("x") == "upper");
  CHECK(f.names("") == std::vector<std::string>{"x"});
  REQUIRE(f.unlink("x").ok());
  CHECK(f.lookup("x").error() == ENOENT);
}

TEST_CASE("creating a name B shows is EEXIST", "[dualfs][whiteout]") {
  DualFixture f;
  f.B.put("x", "lower");
  f.B.mkdirs("d");
  CHECK(f.mkdir("x").error() == EEXIST);
  CHECK(f.mkdir("d").error() == EEXIST);
  CHECK(f.create("x").error() == EEXIST);
  // Without O_EXCL, create opens what is there.
  Result<Entry> opened = f.create("x", {}, 0644, O_RDONLY | O_CREAT);
  REQUIRE(opened.ok());
  CHECK(opened->ino == f.ino("x"));
}
