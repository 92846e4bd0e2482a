// getattr, setattr and access.
#include <unistd.h>

#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

using namespace fuse;

TEST_CASE("memfs: getattr per type", "[memfs][metadata]") {
  TestFs t;
  t.ctx = t.as(1000, 1000);
  Entry f = t.file(root, "f");
  Attr fa = t.attr(f.ino);
  CHECK(fa.ino == f.ino);
  CHECK(fa.mode == (S_IFREG | 0644));
  CHECK(fa.uid == 1000);
  CHECK(fa.gid == 1000);
  CHECK(fa.size == 0);
  CHECK(fa.nlink == 1);
  CHECK(fa.blksize == 4096);

  Entry d = t.mkdir_ok(root, "d");
  Attr da = t.attr(d.ino);
  CHECK(S_ISDIR(da.mode));
  CHECK(da.nlink == 2);

  Result<Entry> l = t.symlink(root, "l", "target");
  REQUIRE(l.ok());
  CHECK(t.attr(l->ino).size == 6);
  CHECK(S_ISLNK(t.attr(l->ino).mode));

  Result<Entry> b = t.mknod(root, "b", S_IFBLK | 0600, 42);
  REQUIRE(b.ok());
  CHECK(t.attr(b->ino).rdev == 42);

  CHECK(t.getattr(9999).error() == EBADF);
}

TEST_CASE("memfs: setattr mode keeps the file type", "[memfs][metadata]") {
  TestFs t;
  Entry f = t.file(root, "f");
  SetAttrIn in;
  in.valid = FATTR_MODE;
  in.mode = S_IFDIR | 04711;  // type bits in the request are ignored
  Result<AttrReply> r = t.setattr(f.ino, in);
  REQUIRE(r.ok());
  CHECK(r->attr.mode == (S_IFREG | 04711));
  CHECK(t.attr(f.ino).mode == (S_IFREG | 04711));
}

TEST_CASE("memfs: setattr uid and gid", "[memfs][metadata]") {
  TestFs t;
  Entry f = t.file(root, "f");
  SetAttrIn in;
  in.valid = FATTR_UID | FATTR_GID;
  in.uid = 1234;
  in.gid = 5678;
  REQUIRE(t.setattr(f.ino, in).ok());
  CHECK(t.attr(f.ino).uid == 1234);
  CHECK(t.attr(f.ino).gid == 5678);
  in.valid = FATTR_GID;
  in.gid = 1;
  REQUIRE(t.setattr(f.ino, in).ok());
  CHECK(t.attr(f.ino).uid == 1234);
  CHECK(t.attr(f.ino).gid == 1);
}

TEST_CASE("memfs: chown clears suid/sgid on regular files for non-root callers",
          "[memfs][metadata][killpriv]") {
  TestFs t;
  Entry f = t.file(root, "f");
  Entry d = t.mkdir_ok(root, "d", 02755);
  SetAttrIn mode;
  mode.valid = FATTR_MODE;
  mode.mode = 06755;
  REQUIRE(t.setattr(f.ino, mode).ok());

  SetAttrIn chown;
  chown.valid = FATTR_GID;
  chown.gid = 7;
  REQUIRE(t.setattr(f.ino, chown).ok());  // root: bits stay
  CHECK((t.attr(f.ino).mode & 07777) == 06755);

  t.ctx = t.as(1000, 1000);
  REQUIRE(t.setattr(f.ino, chown).ok());
  CHECK((t.attr(f.ino).mode & 07777) == 0755);
  REQUIRE(t.setattr(d.ino, chown).ok());  // directories keep setgid
  CHECK((t.attr(d.ino).mode & 07777) == 02755);
}

TEST_CASE("memfs: setattr size truncates and extends", "[memfs][metadata]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "0123456789");
  Result<AttrReply> r = t.truncate(f.ino, 4);
  REQUIRE(r.ok());
  CHECK(r->attr.size == 4);
  CHECK(t.contents(f.ino) == "0123");
  REQUIRE(t.truncate(f.ino, 8).ok());
  CHECK(t.contents(f.ino) == std::string("0123\0\0\0\0", 8));

  Entry d = t.mkdir_ok(root, "d");
  CHECK(t.truncate(d.ino, 0).error() == EISDIR);
  Result<Entry> l = t.symlink(root, "l", "x");
  REQUIRE(l.ok());
  CHECK(t.truncate(l->ino, 0).error() == EINVAL);
  CHECK(t.truncate(f.ino, uint64_t{1} << 63).error() == EFBIG);
  CHECK(t.attr(f.ino).size == 8);
}

TEST_CASE("memfs: setattr size through a handle", "[memfs][metadata]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "abcdef");
  const HandleId fh = t.open_ok(f.ino);
  SetAttrIn in;
  in.valid = FATTR_SIZE | FATTR_FH;
  in.fh = fh;
  in.size = 2;
  REQUIRE(t.setattr(f.ino, in).ok());
  CHECK(t.attr(f.ino).size == 2);
  in.fh = 99999;
  CHECK(t.setattr(f.ino, in).error() == EBADF);
  REQUIRE(t.release(f.ino, fh).ok());
}

TEST_CASE("memfs: setattr timestamps", "[memfs][metadata]") {
  TestFs t;
  Entry f = t.file(root, "f");
  const Timespec before = now();

  SetAttrIn in;
  in.valid = FATTR_ATIME | FATTR_MTIME;
  in.atime = {1'600'000'000, 123'456'789};
  in.mtime = {1'500'000'000, 987'654'321};
  REQUIRE(t.setattr(f.ino, in).ok());
  Attr a = t.attr(f.ino);
  CHECK(a.atime.sec == 1'600'000'000);
  CHECK(a.atime.nsec == 123'456'789);
  CHECK(a.mtime.sec == 1'500'000'000);
  CHECK(a.mtime.nsec == 987'654'321);
  CHECK(a.ctime.sec >= before.sec);  // ctime always moves to now

  in.valid = FATTR_ATIME | FATTR_ATIME_NOW;
  REQUIRE(t.setattr(f.ino, in).ok());
  a = t.attr(f.ino);
  CHECK(a.atime.sec >= before.sec);
  CHECK(a.mtime.sec == 1'500'000'000);

  in.valid = FATTR_MTIME | FATTR_MTIME_NOW;
  REQUIRE(t.setattr(f.ino, in).ok());
  CHECK(t.attr(f.ino).mtime.sec >= before.sec);

  in.valid = FATTR_CTIME;
  in.ctime = {42, 7};
  REQUIRE(t.setattr(f.ino, in).ok());
  CHECK(t.attr(f.ino).ctime.sec == 42);
  CHECK(t.attr(f.ino).ctime.nsec == 7);

  in.valid = FATTR_MTIME;
  in.mtime = {1, 1'000'000'000};
  CHECK(t.setattr(f.ino, in).error() == EINVAL);
}

TEST_CASE("memfs: FATTR_KILL_SUIDGID", "[memfs][metadata][killpriv]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "abc");
  SetAttrIn mode;
  mode.valid = FATTR_MODE;
  mode.mode = 06775;
  REQUIRE(t.setattr(f.ino, mode).ok());

  SECTION("alone") {
    SetAttrIn in;
    in.valid = FATTR_KILL_SUIDGID;
    REQUIRE(t.setattr(f.ino, in).ok());
    CHECK(t.attr(f.ino).mode == (S_IFREG | 0775));
  }
  SECTION("with a truncate") {
    SetAttrIn in;
    in.valid = FATTR_SIZE | FATTR_KILL_SUIDGID;
    in.size = 1;
    REQUIRE(t.setattr(f.ino, in).ok());
    CHECK(t.attr(f.ino).mode == (S_IFREG | 0775));
    CHECK(t.attr(f.ino).size == 1);
  }
  SECTION("sgid without group-exec stays") {
    mode.mode = 06745;
    REQUIRE(t.setattr(f.ino, mode).ok());
    SetAttrIn in;
    in.valid = FATTR_KILL_SUIDGID;
    REQUIRE(t.setattr(f.ino, in).ok());
    CHECK(t.attr(f.ino).mode == (S_IFREG | 02745));
  }
}

TEST_CASE("memfs: access", "[memfs][metadata][access]") {
  TestFs t;
  Entry f = t.file(root, "f", 0640);
  SetAttrIn own;
  own.valid = FATTR_UID | FATTR_GID;
  own.uid = 1000;
  own.gid = 100;
  REQUIRE(t.setattr(f.ino, own).ok());

  SECTION("owner") {
    CHECK(t.access(f.ino, R_OK, 1000, 1).ok());
    CHECK(t.access(f.ino, R_OK | W_OK, 1000, 1).ok());
    CHECK(t.access(f.ino, X_OK, 1000, 1).error() == EACCES);
  }
  SECTION("group") {
    CHECK(t.access(f.ino, R_OK, 2000, 100).ok());
    CHECK(t.access(f.ino, W_OK, 2000, 100).error() == EACCES);
  }
  SECTION("other") {
    CHECK(t.access(f.ino, R_OK, 2000, 200).error() == EACCES);
    CHECK(t.access(f.ino, F_OK, 2000, 200).ok());
  }
  SECTION("root reads and writes, executes only with some x bit") {
    CHECK(t.access(f.ino, R_OK | W_OK, 0, 0).ok());
    CHECK(t.access(f.ino, X_OK, 0, 0).error() == EACCES);
    SetAttrIn mode;
    mode.valid = FATTR_MODE;
    mode.mode = 0601;
    REQUIRE(t.setattr(f.ino, mode).ok());
    CHECK(t.access(f.ino, X_OK, 0, 0).ok());
    Entry d = t.mkdir_ok(root, "d", 0);
    CHECK(t.access(d.ino, R_OK | W_OK | X_OK, 0, 0).ok());
  }
  SECTION("bad requests") {
    CHECK(t.access(f.ino, 0x10, 1000, 1).error() == EINVAL);
    CHECK(t.access(9999, F_OK).error() == EBADF);
  }
}

}  // namespace
}  // namespace sandfs::memfs::testing
