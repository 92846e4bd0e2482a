// unlink, rmdir, open-after-unlink and eviction.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

TEST_CASE("memfs: unlink removes the name", "[memfs][remove]") {
  MemFsConfig cfg;
  cfg.cache = CachePolicy::never;
  TestFs t(cfg);
  Entry f = t.file(root, "f");
  const Timespec before = t.attr(root).mtime;
  REQUIRE(t.unlink(root, "f").ok());
  CHECK(t.lookup(root, "f").error() == ENOENT);
  CHECK(t.names(root) == std::vector<std::string>{".", ".."});
  CHECK(t.attr(f.ino).nlink == 0);
  const Timespec after = t.attr(root).mtime;
  CHECK((after.sec > before.sec || (after.sec == before.sec && after.nsec >= before.nsec)));
}

TEST_CASE("memfs: unlink errors", "[memfs][remove]") {
  TestFs t;
  t.mkdir_ok(root, "d");
  Entry f = t.file(root, "f");
  CHECK(t.unlink(root, "missing").error() == ENOENT);
  CHECK(t.unlink(root, "d").error() == EISDIR);
  CHECK(t.lookup(root, "d").ok());  // still there
  CHECK(t.unlink(root, "..").error() == EPERM);
  CHECK(t.unlink(root, ".").error() == EPERM);
  CHECK(t.unlink(root, "").error() == EINVAL);
  CHECK(t.unlink(f.ino, "x").error() == ENOTDIR);
}

TEST_CASE("memfs: unlink of one hard link keeps the other", "[memfs][remove]") {
  TestFs t;
  Entry f = t.file_with(root, "a", "data");
  REQUIRE(t.link(f.ino, root, "b").ok());
  CHECK(t.attr(f.ino).nlink == 2);
  REQUIRE(t.unlink(root, "a").ok());
  CHECK(t.attr(f.ino).nlink == 1);
  t.fs->forget(f.ino, 2);
  CHECK(t.contents(f.ino) == "data");
}

TEST_CASE("memfs: unlinked last link is evicted after forget", "[memfs][remove]") {
  TestFs t;
  Entry f = t.file_with(root, "f", std::string(10000, 'z'));
  CHECK(t.fs->used_bytes() == 3 * 4096);
  REQUIRE(t.unlink(root, "f").ok());
  CHECK(t.fs->used_bytes() == 3 * 4096);  // still referenced by the kernel
  t.fs->forget(f.ino, 1);
  CHECK(t.fs->used_bytes() == 0);
  CHECK(t.fs->used_inodes() == 1);
  CHECK(t.getattr(f.ino).error() == EBADF);
}

TEST_CASE("memfs: open-after-unlink keeps data readable and writable", "[memfs][remove]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 1 << 20;
  TestFs t(cfg);
  Entry f = t.file_with(root, "f", "before");
  const HandleId fh = t.open_ok(f.ino, O_RDWR);
  REQUIRE(t.unlink(root, "f").ok());
  t.fs->forget(f.ino, 1);  // the kernel dropped its name reference; the handle remains

  Result<std::string> r = t.read(f.ino, fh, 0, 100);
  REQUIRE(r.ok());
  CHECK(*r == "before");
  REQUIRE(t.write(f.ino, fh, 6, "+after").ok());
  Result<std::string> r2 = t.read(f.ino, fh, 0, 100);
  REQUIRE(r2.ok());
  CHECK(*r2 == "before+after");
  CHECK(t.attr(f.ino).nlink == 0);
  CHECK(t.fs->used_bytes() == 4096);
  CHECK(t.fs->used_inodes() == 2);

  REQUIRE(t.release(f.ino, fh).ok());
  CHECK(t.fs->used_bytes() == 0);
  CHECK(t.fs->used_inodes() == 1);
  CHECK(t.getattr(f.ino).error() == EBADF);
}

TEST_CASE("memfs: rmdir", "[memfs][remove]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  t.file(d.ino, "f");
  t.file(root, "file");
  CHECK(t.attr(root).nlink == 3);

  CHECK(t.rmdir(root, "d").error() == ENOTEMPTY);
  CHECK(t.rmdir(root, "file").error() == ENOTDIR);
  CHECK(t.rmdir(root, "missing").error() == ENOENT);
  CHECK(t.rmdir(root, "..").error() == EPERM);

  REQUIRE(t.unlink(d.ino, "f").ok());
  REQUIRE(t.rmdir(root, "d").ok());
  CHECK(t.attr(root).nlink == 2);
  CHECK(t.attr(d.ino).nlink == 0);  // still referenced
  // A removed directory lists nothing and accepts no new names.
  CHECK(t.list(d.ino).empty());
  t.fs->forget(d.ino, 1);
  CHECK(t.getattr(d.ino).error() == EBADF);
}

TEST_CASE("memfs: an open directory handle pins a removed directory", "[memfs][remove]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  Result<OpenReply> h = t.opendir(d.ino);
  REQUIRE(h.ok());
  REQUIRE(t.rmdir(root, "d").ok());
  t.fs->forget(d.ino, 1);
  CHECK(t.getattr(d.ino).ok());
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, d.ino, h->fh)).ok());
  CHECK(t.getattr(d.ino).error() == EBADF);
  CHECK(t.fs->used_inodes() == 1);
}

}  // namespace
}  // namespace sandfs::memfs::testing
