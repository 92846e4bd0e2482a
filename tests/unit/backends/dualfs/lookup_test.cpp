// Lookups, inode numbers and lookup counts towards both children.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

TEST_CASE("lookup answers DualFs inode numbers and the same one for the same object",
          "[dualfs][lookup]") {
  DualFixture f;
  f.B.put("f", "x");
  f.A.put("g", "y");
  Result<Entry> e1 = f.lookup("f");
  Result<Entry> e2 = f.lookup("f");
  REQUIRE(e1.ok());
  REQUIRE(e2.ok());
  CHECK(e1->ino == e2->ino);
  CHECK(e1->attr.ino == e1->ino);
  CHECK(e1->ino != f.ino("g"));
  CHECK(f.attr("f").ino == e1->ino);
}

TEST_CASE("lookup of a missing name is ENOENT and of a reserved name too", "[dualfs][lookup]") {
  DualFixture f;
  f.A.put(".sandfs-dual.wh.x", "");
  CHECK(f.lookup("missing").error() == ENOENT);
  CHECK(f.lookup(".sandfs-dual.wh.x").error() == ENOENT);
  CHECK(f.names("").empty());
  CHECK(f.create(".sandfs-dual.opaque").error() == EPERM);
}

TEST_CASE("forget gives back every child reference DualFs took", "[dualfs][lookup]") {
  DualFixture f;
  f.B.put("d/f", "x");
  f.A.put("d/g", "y");
  const InodeId d = f.ino("d");
  const InodeId file = f.ino("d/f");
  const InodeId g = f.ino("d/g");
  const InodeId d_again = f.ino("d");
  CHECK(d == d_again);
  // Each child inode is pinned once however often it was looked up.
  for (const auto& [ino, n] : f.b->outstanding())
    CHECK(n == 1);
  for (const auto& [ino, n] : f.a->outstanding())
    CHECK(n == 1);
  f.fs->forget(file, 1);
  f.fs->forget(g, 1);
  f.fs->forget(d, 4);  // every path walk above looked d up once
  CHECK(f.a->outstanding().empty());
  CHECK(f.b->outstanding().empty());
  CHECK(f.fs->tracked_inodes() == 1);
}

TEST_CASE("a directory on both sides is one merged inode", "[dualfs][lookup]") {
  DualFixture f;
  f.A.put("d/a", "1");
  f.B.put("d/b", "2");
  CHECK(f.attr("d").mode == (S_IFDIR | 0755));
  CHECK(*f.read("d/a") == "1");
  CHECK(*f.read("d/b") == "2");
}

TEST_CASE("lookup under a non-directory is ENOTDIR", "[dualfs][lookup]") {
  DualFixture f;
  f.B.put("file", "x");
  const InodeId file = f.ino("file");
  Result<Entry> e = run_coro(f.fs->lookup(f.ctx, file, "x"));
  CHECK(e.error() == ENOTDIR);
}

TEST_CASE("statfs reports A and readlink reads B symlinks", "[dualfs][lookup]") {
  DualFixture f;
  REQUIRE(run_coro(f.B.fs->symlink(f.B.ctx, root, "ln", "target/path")).ok());
  Result<std::string> t = run_coro(f.fs->readlink(f.ctx, f.ino("ln")));
  REQUIRE(t.ok());
  CHECK(*t == "target/path");
  Result<StatFs> s = run_coro(f.fs->statfs(f.ctx, root));
  CHECK(s.ok());
}

TEST_CASE("unknown inodes and handles are errors not crashes", "[dualfs][lookup]") {
  DualFixture f;
  CHECK(run_coro(f.fs->getattr(f.ctx, 999, std::nullopt)).error() == ENOENT);
  CHECK(run_coro(f.fs->lookup(f.ctx, 999, "x")).error() == ENOENT);
  f.B.put("f", "x");
  const InodeId file = f.ino("f");
  std::string buf(4, '\0');
  iovec iov{buf.data(), buf.size()};
  IoVecs dst{std::span<const iovec>(&iov, 1), buf.size()};
  CHECK(run_coro(f.fs->read(f.ctx, file, 42, 0, 4, dst)).error() == EBADF);
  CHECK(run_coro(f.fs->release(f.ctx, file, 42, 0)).error() == EBADF);
  f.fs->forget(12345, 1);
}
