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

TEST_CASE("memfs: a write of which not one byte fits fails and changes nothing",
          "[memfs][capacity]") {
  TestFs t(with_capacity(2 * page));
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  REQUIRE(t.write(ino, fh, 0, std::string(2 * page, 's')).ok());
  const Attr before = t.attr(ino);

  CHECK(t.write(ino, fh, 2 * page, std::string(3 * page, 'x')).error() == ENOSPC);
  CHECK(t.write(ino, fh, 10 * page + 5, "y").error() == ENOSPC);
  Attr after = t.attr(ino);
  CHECK(after.size == before.size);
  CHECK(after.blocks == before.blocks);
  CHECK(after.mtime.sec == before.mtime.sec);
  CHECK(after.mtime.nsec == before.mtime.nsec);
  CHECK(t.fs->used_bytes() == 2 * page);
  CHECK(*t.read(ino, fh, 0, 3 * page) == std::string(2 * page, 's'));
  // Rewriting allocated pages needs no capacity.
  CHECK(t.write(ino, fh, 100, "rewrite").ok());
  REQUIRE(t.release(ino, fh).ok());
}

TEST_CASE("memfs: a write that partly fits writes what fits and returns the short count",
          "[memfs][capacity]") {
  TestFs t(with_capacity(4 * page));
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  REQUIRE(t.write(ino, fh, 0, "start").ok());  // page 0
  std::string data(5 * page, '\0');
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>('a' + i % 26);

  // From byte 100 of page 0 on, pages 1-3 fit and pages 4-5 do not.
  Result<size_t> n = t.write(ino, fh, 100, data);
  REQUIRE(n.ok());
  CHECK(*n == 4 * page - 100);
  CHECK(t.attr(ino).size == 4 * page);
  CHECK(t.fs->used_bytes() == 4 * page);
  CHECK(*t.read(ino, fh, 100, static_cast<uint32_t>(*n)) == data.substr(0, *n));
  CHECK(t.write(ino, fh, 4 * page, "more").error() == ENOSPC);

  // A sparse write skips holes it does not need: only the pages it touches count.
  REQUIRE(t.truncate(ino, 0).ok());
  REQUIRE(t.write(ino, fh, 2 * page, std::string(page, 'p')).ok());
  Result<size_t> sparse = t.write(ino, fh, 2 * page - 10, std::string(4 * page, 'q'));
  REQUIRE(sparse.ok());
  CHECK(*sparse == 10 + page + 2 * page);  // pages 1, 2 (present), 3, 4; not 5
  CHECK(t.fs->used_bytes() == 4 * page);
  REQUIRE(t.release(ino, fh).ok());
}

TEST_CASE("memfs: with a writeback cache a write that does not fit fails whole",
          "[memfs][capacity]") {
  MemFsConfig cfg = with_capacity(2 * page);
  cfg.writeback = true;
  SessionParams params;
  params.writeback_cache = true;
  TestFs t(cfg, params);
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  REQUIRE(t.write(c->entry.ino, c->open.fh, 0, "x").ok());
  CHECK(t.write(c->entry.ino, c->open.fh, 0, std::string(3 * page, 'y')).error() == ENOSPC);
  CHECK(t.attr(c->entry.ino).size == 1);
  CHECK(t.fs->used_bytes() == page);
  CHECK(t.contents(c->entry.ino) == "x");
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
  Result<size_t> n = t.write(c->entry.ino, c->open.fh, 0, std::string(page + 1, 'c'));
  REQUIRE(n.ok());
  CHECK(*n == page);  // the last byte would need a fifth page
  CHECK(t.attr(c->entry.ino).size == page);
  CHECK(t.write(c->entry.ino, c->open.fh, page, "c").error() == ENOSPC);
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
