// lookup, forget and the lookup-count protocol.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

TEST_CASE("memfs: lookup finds files / directories and nested names", "[memfs][lookup]") {
  TestFs t;
  Entry f = t.file(root, "file");
  Entry d = t.mkdir_ok(root, "dir");
  Entry nested = t.file(d.ino, "inner");

  Result<Entry> lf = t.lookup(root, "file");
  REQUIRE(lf.ok());
  CHECK(lf->ino == f.ino);
  CHECK(lf->attr.ino == f.ino);
  CHECK(S_ISREG(lf->attr.mode));
  CHECK(lf->generation == 0);

  Result<Entry> ld = t.lookup(root, "dir");
  REQUIRE(ld.ok());
  CHECK(ld->ino == d.ino);
  CHECK(S_ISDIR(ld->attr.mode));

  Result<Entry> ln = t.lookup(d.ino, "inner");
  REQUIRE(ln.ok());
  CHECK(ln->ino == nested.ino);
}

TEST_CASE("memfs: lookup errors", "[memfs][lookup]") {
  MemFsConfig cfg;
  cfg.cache = CachePolicy::never;  // plain ENOENT for missing names
  TestFs t(cfg);
  Entry f = t.file(root, "file");

  CHECK(t.lookup(root, "missing").error() == ENOENT);
  CHECK(t.lookup(root, "").error() == EINVAL);
  CHECK(t.lookup(root, ".").error() == EPERM);
  CHECK(t.lookup(root, "..").error() == EPERM);
  CHECK(t.lookup(root, "a/b").error() == EPERM);
  CHECK(t.lookup(root, std::string(256, 'x')).error() == ENAMETOOLONG);
  CHECK(t.lookup(root, std::string(255, 'x')).error() == ENOENT);
  CHECK(t.lookup(f.ino, "x").error() == ENOTDIR);
  CHECK(t.lookup(12345, "x").error() == EBADF);
}

TEST_CASE("memfs: forgetting every reference of a linked file keeps it", "[memfs][lookup]") {
  TestFs t;
  Entry f = t.file(root, "f");  // create: 1 reference
  REQUIRE(t.lookup(root, "f").ok());
  REQUIRE(t.lookup(root, "f").ok());
  t.fs->forget(f.ino, 3);
  CHECK(t.getattr(f.ino).ok());
  Result<Entry> again = t.lookup(root, "f");
  REQUIRE(again.ok());
  CHECK(again->ino == f.ino);
}

TEST_CASE("memfs: unlink then forget evicts - the name is gone", "[memfs][lookup]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.unlink(root, "f").ok());
  CHECK(t.getattr(f.ino).ok());  // the kernel still holds its reference
  t.fs->forget(f.ino, 1);
  CHECK(t.getattr(f.ino).error() == EBADF);
  Result<Entry> l = t.lookup(root, "f");
  REQUIRE(l.ok());
  CHECK(l->ino == 0);  // negative entry
  CHECK(t.fs->used_inodes() == 1);
}

TEST_CASE("memfs: forget edge cases", "[memfs][lookup]") {
  TestFs t;
  SECTION("unknown inode is a no-op") {
    t.fs->forget(999, 1);
  }
  SECTION("root is never evicted") {
    t.fs->forget(root, 1'000'000);
    CHECK(t.getattr(root).ok());
  }
  SECTION("nlookup larger than the count clamps at zero") {
    Entry f = t.file(root, "f");
    t.fs->forget(f.ino, 100);
    REQUIRE(t.lookup(root, "f").ok());  // back to 1
    REQUIRE(t.unlink(root, "f").ok());
    CHECK(t.getattr(f.ino).ok());
    t.fs->forget(f.ino, 1);
    CHECK(t.getattr(f.ino).error() == EBADF);
  }
  SECTION("batch forget is forget repeated") {
    Entry a = t.file(root, "a");
    Entry b = t.file(root, "b");
    REQUIRE(t.unlink(root, "a").ok());
    REQUIRE(t.unlink(root, "b").ok());
    for (InodeId ino : {a.ino, b.ino})
      t.fs->forget(ino, 1);
    CHECK(t.getattr(a.ino).error() == EBADF);
    CHECK(t.getattr(b.ino).error() == EBADF);
  }
}

TEST_CASE("memfs: inode ids are never reused", "[memfs][lookup]") {
  TestFs t;
  Entry a = t.file(root, "a");
  REQUIRE(t.unlink(root, "a").ok());
  t.fs->forget(a.ino, 1);
  Entry b = t.file(root, "a");
  CHECK(b.ino != a.ino);
  CHECK(b.ino > a.ino);
}

TEST_CASE("memfs: every inode-addressed operation answers EBADF for unknown inodes",
          "[memfs][lookup]") {
  TestFs t;
  const InodeId bad = 4242;
  const RequestContext& c = t.ctx;
  CHECK(run_coro(t.fs->getattr(c, bad, std::nullopt)).error() == EBADF);
  CHECK(run_coro(t.fs->setattr(c, bad, SetAttrIn{})).error() == EBADF);
  CHECK(run_coro(t.fs->readlink(c, bad)).error() == EBADF);
  CHECK(run_coro(t.fs->mknod(c, bad, "x", S_IFREG | 0644, 0, 0)).error() == EBADF);
  CHECK(run_coro(t.fs->mkdir(c, bad, "x", 0755, 0)).error() == EBADF);
  CHECK(run_coro(t.fs->symlink(c, bad, "x", "y")).error() == EBADF);
  CHECK(run_coro(t.fs->link(c, bad, root, "x")).error() == EBADF);
  CHECK(run_coro(t.fs->unlink(c, bad, "x")).error() == EBADF);
  CHECK(run_coro(t.fs->rmdir(c, bad, "x")).error() == EBADF);
  CHECK(run_coro(t.fs->rename(c, bad, "x", root, "y", 0)).error() == EBADF);
  CHECK(run_coro(t.fs->rename(c, root, "x", bad, "y", 0)).error() == EBADF);
  CHECK(run_coro(t.fs->open(c, bad, O_RDONLY, false)).error() == EBADF);
  CHECK(run_coro(t.fs->create(c, bad, "x", 0644, O_RDWR, 0, false)).error() == EBADF);
  CHECK(run_coro(t.fs->opendir(c, bad, 0)).error() == EBADF);
  CHECK(run_coro(t.fs->setxattr(c, bad, "user.a", std::span<const char>(), 0)).error() == EBADF);
  CHECK(run_coro(t.fs->getxattr(c, bad, "user.a", 0)).error() == EBADF);
  CHECK(run_coro(t.fs->listxattr(c, bad, 0)).error() == EBADF);
  CHECK(run_coro(t.fs->removexattr(c, bad, "user.a")).error() == EBADF);
  CHECK(run_coro(t.fs->access(c, bad, F_OK)).error() == EBADF);
  CHECK(run_coro(t.fs->statfs(c, bad)).error() == EBADF);
}

}  // namespace
}  // namespace sandfs::memfs::testing
