// rename and rename2: moves, replacement rules, NOREPLACE, EXCHANGE, subtree checks, nlink.
#include <stdio.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE

#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

// The ".." entry a listing of `dir` reports.
InodeId dotdot_of(TestFs& t, InodeId dir) {
  for (const ListedEntry& e : t.list(dir)) {
    if (e.name == "..") return e.ino;
  }
  return 0;
}

TEST_CASE("memfs: rename a file within a directory", "[memfs][rename]") {
  MemFsConfig cfg;
  cfg.cache = CachePolicy::never;
  TestFs t(cfg);
  Entry f = t.file_with(root, "old", "content");
  REQUIRE(t.rename(root, "old", root, "new").ok());
  CHECK(t.lookup(root, "old").error() == ENOENT);
  Result<Entry> n = t.lookup(root, "new");
  REQUIRE(n.ok());
  CHECK(n->ino == f.ino);
  CHECK(t.contents(f.ino) == "content");
  CHECK(t.names(root) == std::vector<std::string>{".", "..", "new"});
}

TEST_CASE("memfs: rename a file across directories", "[memfs][rename]") {
  TestFs t;
  Entry a = t.mkdir_ok(root, "a");
  Entry b = t.mkdir_ok(root, "b");
  Entry f = t.file(a.ino, "f");
  REQUIRE(t.rename(a.ino, "f", b.ino, "g").ok());
  CHECK(t.lookup(a.ino, "f")->ino == 0);
  CHECK(t.lookup(b.ino, "g")->ino == f.ino);
  CHECK(t.attr(a.ino).nlink == 2);
  CHECK(t.attr(b.ino).nlink == 2);
}

TEST_CASE("memfs: moving a directory fixes parent link counts and '..'", "[memfs][rename]") {
  TestFs t;
  Entry a = t.mkdir_ok(root, "a");
  Entry b = t.mkdir_ok(root, "b");
  Entry d = t.mkdir_ok(a.ino, "d");
  t.file(d.ino, "child");  // non-empty directories move too
  CHECK(t.attr(a.ino).nlink == 3);

  SECTION("within one directory the count is unchanged") {
    REQUIRE(t.rename(a.ino, "d", a.ino, "e").ok());
    CHECK(t.attr(a.ino).nlink == 3);
    CHECK(dotdot_of(t, d.ino) == a.ino);
  }
  SECTION("across directories") {
    REQUIRE(t.rename(a.ino, "d", b.ino, "d").ok());
    CHECK(t.attr(a.ino).nlink == 2);
    CHECK(t.attr(b.ino).nlink == 3);
    CHECK(dotdot_of(t, d.ino) == b.ino);
    CHECK(t.lookup(d.ino, "child").ok());
    CHECK(t.attr(root).nlink == 4);
  }
}

TEST_CASE("memfs: rename over an existing file replaces it", "[memfs][rename]") {
  TestFs t;
  Entry src = t.file_with(root, "src", "new data");
  Entry dst = t.file_with(root, "dst", "old data");
  REQUIRE(t.rename(root, "src", root, "dst").ok());
  Result<Entry> l = t.lookup(root, "dst");
  REQUIRE(l.ok());
  CHECK(l->ino == src.ino);
  CHECK(t.contents(src.ino) == "new data");
  CHECK(t.lookup(root, "src")->ino == 0);
  CHECK(t.attr(dst.ino).nlink == 0);
  CHECK(t.fs->used_bytes() == 2 * 4096);
  t.fs->forget(dst.ino, 1);
  CHECK(t.getattr(dst.ino).error() == EBADF);
  CHECK(t.fs->used_bytes() == 4096);
  CHECK(t.fs->used_inodes() == 2);
}

TEST_CASE("memfs: rename replacement type rules", "[memfs][rename]") {
  TestFs t;
  t.file(root, "file");
  Entry dir = t.mkdir_ok(root, "dir");
  Entry full = t.mkdir_ok(root, "full");
  t.file(full.ino, "x");
  Entry empty = t.mkdir_ok(root, "empty");

  CHECK(t.rename(root, "file", root, "dir").error() == EISDIR);
  CHECK(t.rename(root, "dir", root, "file").error() == ENOTDIR);
  CHECK(t.rename(root, "dir", root, "full").error() == ENOTEMPTY);
  CHECK(t.rename(root, "missing", root, "x").error() == ENOENT);
  CHECK(t.attr(root).nlink == 5);

  // A directory may replace an empty directory; the parent loses one subdirectory.
  REQUIRE(t.rename(root, "dir", root, "empty").ok());
  CHECK(t.lookup(root, "empty")->ino == dir.ino);
  CHECK(t.attr(root).nlink == 4);
  CHECK(t.attr(empty.ino).nlink == 0);
}

TEST_CASE("memfs: a directory replacing one in another directory", "[memfs][rename]") {
  TestFs t;
  Entry a = t.mkdir_ok(root, "a");
  Entry b = t.mkdir_ok(root, "b");
  Entry d = t.mkdir_ok(a.ino, "d");
  t.mkdir_ok(b.ino, "target");
  REQUIRE(t.rename(a.ino, "d", b.ino, "target").ok());
  CHECK(t.attr(a.ino).nlink == 2);
  CHECK(t.attr(b.ino).nlink == 3);
  CHECK(dotdot_of(t, d.ino) == b.ino);
}

TEST_CASE("memfs: rename flags", "[memfs][rename]") {
  TestFs t;
  Entry a = t.file_with(root, "a", "A");
  Entry b = t.file_with(root, "b", "B");

  SECTION("unknown flags") {
    CHECK(t.rename(root, "a", root, "c", 4 /* RENAME_WHITEOUT */).error() == EINVAL);
    CHECK(t.rename(root, "a", root, "c", 8).error() == EINVAL);
  }
  SECTION("NOREPLACE and EXCHANGE together") {
    CHECK(t.rename(root, "a", root, "b", RENAME_NOREPLACE | RENAME_EXCHANGE).error() == EINVAL);
  }
  SECTION("NOREPLACE on an existing target") {
    CHECK(t.rename(root, "a", root, "b", RENAME_NOREPLACE).error() == EEXIST);
    CHECK(t.contents(b.ino) == "B");
  }
  SECTION("NOREPLACE on a free name") {
    REQUIRE(t.rename(root, "a", root, "c", RENAME_NOREPLACE).ok());
    CHECK(t.lookup(root, "c")->ino == a.ino);
  }
  SECTION("EXCHANGE swaps the two names") {
    REQUIRE(t.rename(root, "a", root, "b", RENAME_EXCHANGE).ok());
    CHECK(t.lookup(root, "a")->ino == b.ino);
    CHECK(t.lookup(root, "b")->ino == a.ino);
    CHECK(t.contents(t.lookup(root, "a")->ino) == "B");
    CHECK(t.attr(a.ino).nlink == 1);
    CHECK(t.attr(b.ino).nlink == 1);
  }
  SECTION("EXCHANGE needs an existing target") {
    CHECK(t.rename(root, "a", root, "missing", RENAME_EXCHANGE).error() == ENOENT);
  }
}

TEST_CASE("memfs: RENAME_EXCHANGE across directories fixes nlink and '..'", "[memfs][rename]") {
  TestFs t;
  Entry p1 = t.mkdir_ok(root, "p1");
  Entry p2 = t.mkdir_ok(root, "p2");
  Entry dir = t.mkdir_ok(p1.ino, "dir");
  Entry file = t.file(p2.ino, "file");
  CHECK(t.attr(p1.ino).nlink == 3);
  CHECK(t.attr(p2.ino).nlink == 2);

  REQUIRE(t.rename(p1.ino, "dir", p2.ino, "file", RENAME_EXCHANGE).ok());
  CHECK(t.lookup(p1.ino, "dir")->ino == file.ino);
  CHECK(t.lookup(p2.ino, "file")->ino == dir.ino);
  CHECK(t.attr(p1.ino).nlink == 2);
  CHECK(t.attr(p2.ino).nlink == 3);
  CHECK(dotdot_of(t, dir.ino) == p2.ino);
  std::vector<ListedEntry> l1 = t.list(p1.ino);
  REQUIRE(l1.size() == 3);
  CHECK(l1[2].dtype == DT_REG);

  // Two directories swapping: counts stay, both '..' change.
  Entry other = t.mkdir_ok(p1.ino, "other");
  REQUIRE(t.rename(p1.ino, "other", p2.ino, "file", RENAME_EXCHANGE).ok());
  CHECK(dotdot_of(t, other.ino) == p2.ino);
  CHECK(dotdot_of(t, dir.ino) == p1.ino);
  CHECK(t.attr(p1.ino).nlink == 3);
  CHECK(t.attr(p2.ino).nlink == 3);
}

TEST_CASE("memfs: a directory cannot move into its own subtree", "[memfs][rename]") {
  TestFs t;
  Entry a = t.mkdir_ok(root, "a");
  Entry b = t.mkdir_ok(a.ino, "b");
  Entry c = t.mkdir_ok(b.ino, "c");

  CHECK(t.rename(root, "a", c.ino, "a2").error() == EINVAL);
  CHECK(t.rename(root, "a", a.ino, "self").error() == EINVAL);
  CHECK(t.rename(a.ino, "b", c.ino, "x").error() == EINVAL);
  CHECK(t.rename(root, "a", b.ino, "x", RENAME_EXCHANGE).error() == ENOENT);
  // A target that is an ancestor of the source: not empty, or EINVAL for an exchange.
  t.file(c.ino, "f");
  CHECK(t.rename(c.ino, "f", root, "a").error() == ENOTEMPTY);
  CHECK(t.rename(c.ino, "f", root, "a", RENAME_EXCHANGE).error() == EINVAL);
  CHECK(t.rename(b.ino, "c", root, "a", RENAME_EXCHANGE).error() == EINVAL);
  CHECK(t.rename(root, "a", c.ino, "f", RENAME_EXCHANGE).error() == EINVAL);
  // Nothing moved.
  CHECK(t.lookup(root, "a")->ino == a.ino);
  CHECK(t.lookup(a.ino, "b")->ino == b.ino);
  CHECK(t.lookup(b.ino, "c")->ino == c.ino);
  CHECK(t.attr(root).nlink == 3);
  // Moving up and sideways is fine.
  REQUIRE(t.rename(b.ino, "c", root, "c").ok());
  CHECK(dotdot_of(t, c.ino) == root);
  CHECK(t.attr(b.ino).nlink == 2);
  CHECK(t.attr(root).nlink == 4);
}

TEST_CASE("memfs: renaming onto a hard link of the same inode does nothing", "[memfs][rename]") {
  TestFs t;
  Entry f = t.file(root, "a");
  REQUIRE(t.link(f.ino, root, "b").ok());
  REQUIRE(t.rename(root, "a", root, "b").ok());
  CHECK(t.lookup(root, "a")->ino == f.ino);
  CHECK(t.lookup(root, "b")->ino == f.ino);
  CHECK(t.attr(f.ino).nlink == 2);

  Entry d = t.mkdir_ok(root, "d");
  REQUIRE(t.link(f.ino, d.ino, "c").ok());
  REQUIRE(t.rename(root, "a", d.ino, "c").ok());
  CHECK(t.lookup(root, "a")->ino == f.ino);
  CHECK(t.attr(f.ino).nlink == 3);

  REQUIRE(t.rename(root, "a", root, "a").ok());
  CHECK(t.lookup(root, "a")->ino == f.ino);
}

TEST_CASE("memfs: rename name checks and parent types", "[memfs][rename]") {
  TestFs t;
  Entry f = t.file(root, "f");
  CHECK(t.rename(root, "..", root, "x").error() == EPERM);
  CHECK(t.rename(root, "f", root, "a/b").error() == EPERM);
  CHECK(t.rename(root, "f", root, "").error() == EINVAL);
  CHECK(t.rename(root, "f", root, std::string(256, 'n')).error() == ENAMETOOLONG);
  CHECK(t.rename(root, "f", f.ino, "x").error() == ENOTDIR);
  CHECK(t.rename(f.ino, "x", root, "y").error() == ENOTDIR);
  Entry d = t.mkdir_ok(root, "d");
  REQUIRE(t.rmdir(root, "d").ok());
  CHECK(t.rename(root, "f", d.ino, "x").error() == ENOENT);
}

}  // namespace
}  // namespace sandfs::memfs::testing
