// Capacity and inode limits: ENOSPC is all-or-nothing and space comes back.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

constexpr uint64_t page = 4096;

MemFsConfig with_capacity(uint64_t bytes) {
  MemFsConfig cfg;
  cfg.capacity_bytes = bytes;
  return cfg;
}

MemFsConfig with_inodes(uint64_t n) {
  MemFsConfig cfg;
  cfg.max_inodes = n;
  cfg.cache = CachePolicy::never;  // plain ENOENT for missing names
  return cfg;
}

TEST_CASE("memfs: writes within the capacity succeed", "[memfs][capacity]") {
  TestFs t(with_capacity(2 * page));
  Entry f = t.file_with(root, "f", std::string(512, 'a'));
  CHECK(t.fs->used_bytes() == page);
  CHECK(t.attr(f.ino).size == 512);
}

TEST_CASE("memfs: a write beyond the capacity fails whole and changes nothing",
          "[memfs][capacity]") {
  TestFs t(with_capacity(2 * page));
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  REQUIRE(t.write(c->entry.ino, c->open.fh, 0, "start").ok());
  const Attr before = t.attr(c->entry.ino);

  CHECK(t.write(c->entry.ino, c->open.fh, 3, std::string(3 * page, 'x')).error() == ENOSPC);
  Attr after = t.attr(c->entry.ino);
  CHECK(after.size == before.size);
  CHECK(after.blocks == before.blocks);
  CHECK(after.mtime.sec == before.mtime.sec);
  CHECK(after.mtime.nsec == before.mtime.nsec);
  CHECK(t.fs->used_bytes() == page);
  CHECK(*t.read(c->entry.ino, c->open.fh, 0, 100) == "start");

  // Exactly filling the capacity works.
  CHECK(t.write(c->entry.ino, c->open.fh, page, std::string(page, 'y')).ok());
  CHECK(t.fs->used_bytes() == 2 * page);
  CHECK(t.write(c->entry.ino, c->open.fh, 2 * page, "z").error() == ENOSPC);
  REQUIRE(t.release(c->entry.ino, c->open.fh).ok());
}

TEST_CASE("memfs: truncation gives capacity back", "[memfs][capacity]") {
  TestFs t(with_capacity(4 * page));
  Entry f = t.file_with(root, "f", std::string(4 * page, 'a'));
  CHECK(t.fs->used_bytes() == 4 * page);
  REQUIRE(t.truncate(f.ino, 0).ok());
  CHECK(t.fs->used_bytes() == 0);
  Entry g = t.file_with(root, "g", std::string(4 * page, 'b'));
  CHECK(t.attr(g.ino).size == 4 * page);
}

TEST_CASE("memfs: unlink gives capacity back once the inode is forgotten", "[memfs][capacity]") {
  TestFs t(with_capacity(4 * page));
  Entry f = t.file_with(root, "f", std::string(3 * page, 'a'));
  REQUIRE(t.unlink(root, "f").ok());
  CHECK(t.fs->used_bytes() == 3 * page);
  t.fs->forget(f.ino, 1);
  CHECK(t.fs->used_bytes() == 0);
}

TEST_CASE("memfs: an open unlinked file stays charged until released", "[memfs][capacity]") {
  TestFs t(with_capacity(4 * page));
  Entry f = t.file_with(root, "f", std::string(2 * page, 'a'));
  const HandleId fh = t.open_ok(f.ino);
  REQUIRE(t.unlink(root, "f").ok());
  t.fs->forget(f.ino, 1);
  CHECK(t.fs->used_bytes() == 2 * page);
  REQUIRE(t.release(f.ino, fh).ok());
  CHECK(t.fs->used_bytes() == 0);
}

TEST_CASE("memfs: several files share one capacity", "[memfs][capacity]") {
  TestFs t(with_capacity(4 * page));
  t.file_with(root, "a", std::string(page, 'a'));
  t.file_with(root, "b", std::string(2 * page, 'b'));
  CHECK(t.fs->used_bytes() == 3 * page);
  Result<CreateReply> c = t.create(root, "c");
  REQUIRE(c.ok());
  CHECK(t.write(c->entry.ino, c->open.fh, 0, std::string(page + 1, 'c')).error() == ENOSPC);
  CHECK(t.attr(c->entry.ino).size == 0);
  CHECK(t.write(c->entry.ino, c->open.fh, 0, std::string(page, 'c')).ok());
  REQUIRE(t.release(c->entry.ino, c->open.fh).ok());
}

TEST_CASE("memfs: sparse writes charge only the pages they touch", "[memfs][capacity]") {
  TestFs t(with_capacity(2 * page));
  Entry f = t.file(root, "f");
  const HandleId fh = t.open_ok(f.ino);
  REQUIRE(t.write(f.ino, fh, 1000, "abcd").ok());  // one page, not 1004 bytes of gap
  CHECK(t.fs->used_bytes() == page);
  REQUIRE(t.write(f.ino, fh, uint64_t{1} << 40, "far").ok());
  CHECK(t.fs->used_bytes() == 2 * page);
  REQUIRE(t.release(f.ino, fh).ok());
}

TEST_CASE("memfs: the inode limit counts the root", "[memfs][capacity][inodes]") {
  TestFs t(with_inodes(3));
  t.file(root, "a");
  t.mkdir_ok(root, "b");
  CHECK(t.fs->used_inodes() == 3);

  CHECK(t.create(root, "c").error() == ENOSPC);
  CHECK(t.mkdir(root, "c").error() == ENOSPC);
  CHECK(t.mknod(root, "c", S_IFIFO | 0644).error() == ENOSPC);
  CHECK(t.symlink(root, "c", "x").error() == ENOSPC);
  // Nothing half-created: no entry, no link count change, no time change needed.
  CHECK(t.lookup(root, "c").error() == ENOENT);
  CHECK(t.names(root) == std::vector<std::string>{".", "..", "a", "b"});
  CHECK(t.attr(root).nlink == 3);
  CHECK(t.fs->used_inodes() == 3);

  // Hard links need no new inode.
  Entry a = *t.lookup(root, "a");
  CHECK(t.link(a.ino, root, "a2").ok());
}

TEST_CASE("memfs: removing frees an inode slot", "[memfs][capacity][inodes]") {
  TestFs t(with_inodes(2));
  Entry a = t.file(root, "a");
  CHECK(t.create(root, "b").error() == ENOSPC);
  REQUIRE(t.unlink(root, "a").ok());
  CHECK(t.create(root, "b").error() == ENOSPC);  // still referenced by the kernel
  t.fs->forget(a.ino, 1);
  Result<CreateReply> b = t.create(root, "b");
  REQUIRE(b.ok());
  REQUIRE(t.release(b->entry.ino, b->open.fh).ok());
}

TEST_CASE("memfs: a zero-capacity filesystem still holds empty files", "[memfs][capacity]") {
  TestFs t(with_capacity(0));
  Entry f = t.file(root, "f");
  const HandleId fh = t.open_ok(f.ino);
  CHECK(t.write(f.ino, fh, 0, "x").error() == ENOSPC);
  CHECK(t.setxattr(f.ino, "user.a", "").error() == ENOSPC);  // the name costs bytes
  REQUIRE(t.truncate(f.ino, 1 << 20).ok());                  // a hole costs nothing
  CHECK(t.fs->used_bytes() == 0);
  REQUIRE(t.release(f.ino, fh).ok());
  Result<StatFs> st = t.statfs();
  REQUIRE(st.ok());
  CHECK(st->blocks == 0);
  CHECK(st->bfree == 0);
}

}  // namespace
}  // namespace sandfs::memfs::testing
