// rename across the two sides.
#include <linux/fs.h>

#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

TEST_CASE("renaming a B file copies it up and whites out the old name", "[dualfs][rename]") {
  DualFixture f;
  f.B.put("src/file", "payload");
  f.B.mkdirs("dst");
  const InodeId ino = f.ino("src/file");
  REQUIRE(f.rename("src/file", "dst/moved").ok());
  CHECK(f.lookup("src/file").error() == ENOENT);
  CHECK(f.ino("dst/moved") == ino);
  CHECK(*f.read("dst/moved") == "payload");
  CHECK(f.names("src").empty());
  CHECK(f.B.exists("src/file"));
}

TEST_CASE("renaming over a B file hides it for good", "[dualfs][rename]") {
  DualFixture f;
  f.B.put("target", "lower");
  REQUIRE(f.create("source", "upper").ok());
  REQUIRE(f.rename("source", "target").ok());
  CHECK(*f.read("target") == "upper");
  REQUIRE(f.unlink("target").ok());
  CHECK(f.lookup("target").error() == ENOENT);
}

TEST_CASE("renaming a B or merged directory is EXDEV and an A directory moves",
          "[dualfs][rename]") {
  DualFixture f;
  f.B.mkdirs("lower_dir");
  f.B.put("merged/x", "1");
  f.A.put("merged/y", "2");
  CHECK(f.rename("lower_dir", "elsewhere").error() == EXDEV);
  CHECK(f.rename("merged", "elsewhere").error() == EXDEV);
  REQUIRE(f.mkdir("mine").ok());
  REQUIRE(f.create("mine/f", "z").ok());
  REQUIRE(f.rename("mine", "yours").ok());
  CHECK(*f.read("yours/f") == "z");
  CHECK(f.rename("yours", "lower_dir").error() == EXDEV);
}

TEST_CASE("RENAME_NOREPLACE sees names on B", "[dualfs][rename]") {
  DualFixture f;
  f.B.put("taken", "b");
  REQUIRE(f.create("mine", "a").ok());
  CHECK(f.rename("mine", "taken", RENAME_NOREPLACE).error() == EEXIST);
  CHECK(*f.read("taken") == "b");
}

TEST_CASE("RENAME_EXCHANGE swaps a B file with an A file", "[dualfs][rename]") {
  DualFixture f;
  f.B.put("lower", "L");
  REQUIRE(f.create("upper", "U").ok());
  REQUIRE(f.rename("lower", "upper", RENAME_EXCHANGE).ok());
  CHECK(*f.read("lower") == "U");
  CHECK(*f.read("upper") == "L");
}

TEST_CASE("bad rename flags are EINVAL", "[dualfs][rename]") {
  DualFixture f;
  REQUIRE(f.create("a").ok());
  CHECK(f.rename("a", "b", RENAME_NOREPLACE | RENAME_EXCHANGE).error() == EINVAL);
  CHECK(f.rename("a", "b", 0x80).error() == EINVAL);
}
