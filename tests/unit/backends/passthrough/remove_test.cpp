// unlink, rmdir, rename, and what keeps working after a name is gone.
#include <linux/fs.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: unlink and rmdir", "[passthrough][remove]") {
  TestFs t;
  Entry f = t.file(root, "f");
  Entry d = t.mkdir_ok(root, "d");
  t.file(d.ino, "inner");
  CHECK(t.unlink(root, "f").ok());
  CHECK(!t.host_exists("f"));
  CHECK(err(t.unlink(root, "f")) == ENOENT);
  CHECK(err(t.unlink(root, "d")) == EISDIR);
  CHECK(err(t.rmdir(root, "d")) == ENOTEMPTY);
  CHECK(t.unlink(d.ino, "inner").ok());
  CHECK(t.rmdir(root, "d").ok());
  CHECK(!t.host_exists("d"));
  CHECK(err(t.rmdir(root, "d")) == ENOENT);
  t.file(root, "g");
  CHECK(err(t.rmdir(root, "g")) == ENOTDIR);
  (void)f;
}

TEST_CASE("passthrough: an open file keeps working after unlink", "[passthrough][remove]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 1; });
  Entry f = t.file_with(root, "f", "before");
  HandleId fh = t.open_ok(f.ino, O_RDWR);
  REQUIRE(t.unlink(root, "f").ok());
  CHECK(t.lookup(root, "f")->ino == 0);
  CHECK(*t.read(f.ino, fh, 0, 100) == "before");
  CHECK(*t.write(f.ino, fh, 6, " after") == 6);
  CHECK(*t.read(f.ino, fh, 0, 100) == "before after");
  CHECK(run_io(t.fs->flush(t.ctx, f.ino, fh, 0)).ok());
  CHECK(t.fsync(f.ino, fh).ok());
  // getattr by handle and by inode (the kernel still holds it).
  Result<AttrReply> by_fh = t.getattr(f.ino, fh);
  REQUIRE(by_fh.ok());
  CHECK(by_fh->attr.size == 12);
  CHECK(by_fh->attr.nlink == 0);
  // Fill the one-slot fd cache with other inodes: the unlinked inode's fd is pinned.
  for (int i = 0; i < 4; ++i)
    t.file(root, "other" + std::to_string(i));
  Attr a = t.attr(f.ino);
  CHECK(a.size == 12);
  CHECK(a.nlink == 0);
  // Opening it again by inode works too.
  HandleId again = t.open_ok(f.ino, O_RDONLY);
  CHECK(*t.read(f.ino, again, 0, 100) == "before after");
  CHECK(t.release(f.ino, again).ok());
  CHECK(t.release(f.ino, fh).ok());
  CHECK(err(t.read(f.ino, fh, 0, 1)) == EBADF);
  t.forget(f.ino);
  CHECK(err(t.getattr(f.ino)) == EBADF);
}

TEST_CASE("passthrough: getattr by handle works after the inode is forgotten",
          "[passthrough][remove]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "123456");
  HandleId fh = t.open_ok(f.ino, O_RDONLY);
  t.forget(f.ino);
  CHECK(err(t.getattr(f.ino)) == EBADF);
  Result<AttrReply> a = t.getattr(f.ino, fh);
  REQUIRE(a.ok());
  CHECK(a->attr.size == 6);
  CHECK(*t.read(f.ino, fh, 0, 6) == "123456");
  CHECK(t.release(f.ino, fh).ok());
}

TEST_CASE("passthrough: a removed directory stays reachable by inode", "[passthrough][remove]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 1; });
  Entry d = t.mkdir_ok(root, "d");
  REQUIRE(t.rmdir(root, "d").ok());
  t.file(root, "x");
  t.file(root, "y");
  Attr a = t.attr(d.ino);
  CHECK((a.mode & S_IFMT) == S_IFDIR);
  CHECK(err(t.create(d.ino, "new")) == ENOENT);
}

TEST_CASE("passthrough: rename moves names and keeps inodes", "[passthrough][remove]") {
  TestFs t;
  Entry a = t.file_with(root, "a", "AAA");
  Entry d = t.mkdir_ok(root, "d");
  REQUIRE(t.rename(root, "a", d.ino, "b").ok());
  CHECK(t.lookup(root, "a")->ino == 0);
  CHECK(t.lookup_ok(d.ino, "b").ino == a.ino);
  CHECK(t.host_read("d/b") == "AAA");
  CHECK(t.contents(a.ino) == "AAA");

  // Over an existing file: the target's content is replaced, its inode lives on while held.
  Entry c = t.file_with(root, "c", "CCC");
  HandleId cfh = t.open_ok(c.ino, O_RDONLY);
  REQUIRE(t.rename(d.ino, "b", root, "c").ok());
  CHECK(t.lookup_ok(root, "c").ino == a.ino);
  CHECK(t.contents(a.ino) == "AAA");
  CHECK(*t.read(c.ino, cfh, 0, 3) == "CCC");
  CHECK(t.attr(c.ino).nlink == 0);
  CHECK(t.release(c.ino, cfh).ok());

  // RENAME_NOREPLACE, RENAME_EXCHANGE, bad flags.
  Entry x = t.file_with(root, "x", "X");
  CHECK(err(t.rename(root, "x", root, "c", RENAME_NOREPLACE)) == EEXIST);
  REQUIRE(t.rename(root, "x", root, "c", RENAME_EXCHANGE).ok());
  CHECK(t.lookup_ok(root, "c").ino == x.ino);
  CHECK(t.lookup_ok(root, "x").ino == a.ino);
  CHECK(t.host_read("c") == "X");
  CHECK(err(t.rename(root, "x", root, "c", RENAME_WHITEOUT)) == EINVAL);
  CHECK(err(t.rename(root, "x", root, "c", 0x100)) == EINVAL);
  CHECK(err(t.rename(root, "missing", root, "z")) == ENOENT);
}

TEST_CASE("passthrough: renaming between two names of one file keeps both",
          "[passthrough][remove]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 1; });
  Entry f = t.file_with(root, "one", "data");
  REQUIRE(t.link(f.ino, root, "two").ok());
  REQUIRE(t.rename(root, "one", root, "two", RENAME_EXCHANGE).ok());
  REQUIRE(t.rename(root, "one", root, "two").ok());  // POSIX: does nothing
  CHECK(t.lookup_ok(root, "one").ino == f.ino);
  CHECK(t.lookup_ok(root, "two").ino == f.ino);
  REQUIRE(t.unlink(root, "one").ok());
  t.file(root, "evict1");
  t.file(root, "evict2");
  CHECK(t.contents(f.ino) == "data");  // re-walked through "two"
}

TEST_CASE("passthrough: a directory rename carries its subtree", "[passthrough][remove]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 1; });
  Entry a = t.mkdir_ok(root, "a");
  Entry b = t.mkdir_ok(a.ino, "b");
  Entry f = t.file_with(b.ino, "f", "deep");
  Entry z = t.mkdir_ok(root, "z");
  REQUIRE(t.rename(root, "a", z.ino, "a2").ok());
  REQUIRE(t.rename(a.ino, "b", root, "b2").ok());
  t.file(root, "evict");
  CHECK(t.contents(f.ino) == "deep");
  CHECK(t.walk("b2/f").ino == f.ino);
  CHECK(t.walk("z/a2").ino == a.ino);
  CHECK(err(t.rename(root, "z", z.ino, "inside")) == EINVAL);  // into itself
}
