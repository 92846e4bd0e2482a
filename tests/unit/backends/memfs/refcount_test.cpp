// Lookup references, handles and eviction.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

TEST_CASE("memfs: partial forgets keep an unlinked inode alive", "[memfs][refcount]") {
  TestFs t;
  Entry f = t.file(root, "f");        // 1
  REQUIRE(t.lookup(root, "f").ok());  // 2
  REQUIRE(t.lookup(root, "f").ok());  // 3
  REQUIRE(t.unlink(root, "f").ok());
  t.fs->forget(f.ino, 1);
  CHECK(t.getattr(f.ino).ok());
  t.fs->forget(f.ino, 1);
  CHECK(t.getattr(f.ino).ok());
  CHECK(t.attr(f.ino).nlink == 0);
  t.fs->forget(f.ino, 1);
  CHECK(t.getattr(f.ino).error() == EBADF);
}

TEST_CASE("memfs: an open handle pins an unlinked / forgotten inode", "[memfs][refcount]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "pinned");
  const HandleId h1 = t.open_ok(f.ino, O_RDONLY);
  const HandleId h2 = t.open_ok(f.ino, O_RDONLY);
  REQUIRE(t.unlink(root, "f").ok());
  t.fs->forget(f.ino, 1);
  REQUIRE(t.release(f.ino, h1).ok());
  Result<std::string> r = t.read(f.ino, h2, 0, 10);
  REQUIRE(r.ok());
  CHECK(*r == "pinned");
  CHECK(t.fs->used_inodes() == 2);
  REQUIRE(t.release(f.ino, h2).ok());
  CHECK(t.getattr(f.ino).error() == EBADF);
  CHECK(t.fs->used_inodes() == 1);
}

TEST_CASE("memfs: releasing the handle of a linked file keeps it", "[memfs][refcount]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "x");
  t.fs->forget(f.ino, 1);
  const HandleId fh = t.open_ok(f.ino);
  REQUIRE(t.release(f.ino, fh).ok());
  CHECK(t.contents(f.ino) == "x");
}

TEST_CASE("memfs: rename replacing the last link evicts once forgotten", "[memfs][refcount]") {
  TestFs t;
  Entry a = t.file(root, "a");
  Entry b = t.file(root, "b");
  t.fs->forget(b.ino, 1);  // the kernel no longer knows b
  REQUIRE(t.rename(root, "a", root, "b").ok());
  CHECK(t.getattr(b.ino).error() == EBADF);  // replaced and unreferenced: gone at once
  CHECK(t.getattr(a.ino).ok());
  CHECK(t.fs->used_inodes() == 2);
}

}  // namespace
}  // namespace sandfs::memfs::testing
