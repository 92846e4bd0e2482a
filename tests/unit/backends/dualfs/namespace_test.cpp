// Creating names in B directories: ancestors promoted with B's mode and owner.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

TEST_CASE("creating inside a B directory chain promotes every ancestor", "[dualfs][namespace]") {
  DualFixture f;
  f.B.mkdirs("a/b/c", 0711);
  const InodeId c_b = f.B.walk("a/b");
  SetAttrIn chown;
  chown.valid = fuse::FATTR_UID | fuse::FATTR_GID;
  chown.uid = 7;
  chown.gid = 8;
  REQUIRE(run_coro(f.B.fs->setattr(f.B.ctx, c_b, chown)).ok());
  REQUIRE(f.create("a/b/c/new", "n").ok());
  CHECK(f.A.attr("a").mode == (S_IFDIR | 0711));
  CHECK(f.A.attr("a/b").uid == 7);
  CHECK(f.A.attr("a/b").gid == 8);
  CHECK(*f.A.content("a/b/c/new") == "n");
  CHECK_FALSE(f.B.exists("a/b/c/new"));
}

TEST_CASE("mkdir symlink mknod and link land in A", "[dualfs][namespace]") {
  DualFixture f;
  f.B.mkdirs("d");
  REQUIRE(f.mkdir("d/sub", 0700).ok());
  const InodeId d = f.ino("d");
  Result<Entry> s = run_coro(f.fs->symlink(f.ctx, d, "ln", "target"));
  REQUIRE(s.ok());
  Result<Entry> n = run_coro(f.fs->mknod(f.ctx, d, "fifo", S_IFIFO | 0600, 0, 0));
  REQUIRE(n.ok());
  CHECK(S_ISLNK(f.A.attr("d/ln").mode));
  CHECK(S_ISFIFO(f.A.attr("d/fifo").mode));
  CHECK(f.A.attr("d/sub").mode == (S_IFDIR | 0700));
  CHECK(f.names("d") == std::vector<std::string>{"fifo", "ln", "sub"});
  Result<Entry> again = run_coro(f.fs->mkdir(f.ctx, d, "sub", 0700, 0));
  CHECK(again.error() == EEXIST);
}
