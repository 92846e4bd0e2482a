// create, mkdir, mknod, symlink, link: attributes, ownership and errors.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

bool not_before(Timespec a, Timespec b) {
  return a.sec > b.sec || (a.sec == b.sec && a.nsec >= b.nsec);
}

TEST_CASE("memfs: create makes an empty regular file owned by the caller", "[memfs][create]") {
  TestFs t;
  t.ctx = t.as(1000, 1000);
  const Timespec before = now();
  Result<CreateReply> r = t.create(root, "f", 0644);
  REQUIRE(r.ok());
  const Attr& a = r->entry.attr;
  CHECK(r->entry.ino > root);
  CHECK(a.ino == r->entry.ino);
  CHECK(a.mode == (S_IFREG | 0644));
  CHECK(a.uid == 1000);
  CHECK(a.gid == 1000);
  CHECK(a.size == 0);
  CHECK(a.blocks == 0);
  CHECK(a.nlink == 1);
  CHECK(not_before(a.atime, before));
  CHECK(not_before(a.mtime, before));
  CHECK(not_before(a.ctime, before));
  CHECK(r->open.fh != 0);
  Attr parent = t.attr(root);
  CHECK(not_before(parent.mtime, before));
  CHECK(not_before(parent.ctime, before));
  CHECK(t.fs->used_inodes() == 2);
}

TEST_CASE("memfs: the umask is applied to new objects", "[memfs][create]") {
  TestFs t;
  Result<CreateReply> f = run_coro(t.fs->create(t.ctx, root, "f", 0777, O_RDWR, 022, false));
  REQUIRE(f.ok());
  CHECK(f->entry.attr.mode == (S_IFREG | 0755));
  Result<Entry> d = run_coro(t.fs->mkdir(t.ctx, root, "d", 0777, 027));
  REQUIRE(d.ok());
  CHECK(d->attr.mode == (S_IFDIR | 0750));
  Result<Entry> n = run_coro(t.fs->mknod(t.ctx, root, "n", S_IFIFO | 0666, 0, 002));
  REQUIRE(n.ok());
  CHECK(n->attr.mode == (S_IFIFO | 0664));
  // Type bits in the mode never leak into the permission bits.
  Result<Entry> d2 = run_coro(t.fs->mkdir(t.ctx, root, "d2", S_IFREG | 01755, 0));
  REQUIRE(d2.ok());
  CHECK(d2->attr.mode == (S_IFDIR | 01755));
}

TEST_CASE("memfs: create on an existing name", "[memfs][create]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "hello");

  SECTION("without O_EXCL opens the existing file") {
    Result<CreateReply> r = t.create(root, "f", 0600, O_RDWR | O_CREAT);
    REQUIRE(r.ok());
    CHECK(r->entry.ino == f.ino);
    CHECK(r->entry.attr.mode == (S_IFREG | 0644));  // the existing mode stays
    Result<std::string> data = t.read(f.ino, r->open.fh, 0, 100);
    REQUIRE(data.ok());
    CHECK(*data == "hello");
    CHECK(t.fs->used_inodes() == 2);
  }
  SECTION("without O_EXCL, with O_TRUNC truncates it") {
    Result<CreateReply> r = t.create(root, "f", 0600, O_RDWR | O_CREAT | O_TRUNC);
    REQUIRE(r.ok());
    CHECK(r->entry.ino == f.ino);
    CHECK(r->entry.attr.size == 0);
    CHECK(t.fs->used_bytes() == 0);
  }
  SECTION("with O_EXCL is EEXIST") {
    CHECK(t.create(root, "f", 0644, O_RDWR | O_CREAT | O_EXCL).error() == EEXIST);
  }
  SECTION("an existing directory is EISDIR") {
    t.mkdir_ok(root, "d");
    CHECK(t.create(root, "d").error() == EISDIR);
  }
  SECTION("the new reference counts: the file survives one forget after unlink") {
    Result<CreateReply> r = t.create(root, "f");
    REQUIRE(r.ok());
    REQUIRE(t.release(f.ino, r->open.fh).ok());
    REQUIRE(t.unlink(root, "f").ok());
    t.fs->forget(f.ino, 1);
    CHECK(t.getattr(f.ino).ok());
    t.fs->forget(f.ino, 1);
    CHECK(t.getattr(f.ino).error() == EBADF);
  }
}

TEST_CASE("memfs: duplicate names are EEXIST", "[memfs][create]") {
  TestFs t;
  t.file(root, "x");
  CHECK(t.mkdir(root, "x").error() == EEXIST);
  CHECK(t.mknod(root, "x", S_IFIFO | 0644).error() == EEXIST);
  CHECK(t.symlink(root, "x", "target").error() == EEXIST);
  Entry other = t.file(root, "y");
  CHECK(t.link(other.ino, root, "x").error() == EEXIST);
  CHECK(t.fs->used_inodes() == 3);
}

TEST_CASE("memfs: creation name checks", "[memfs][create]") {
  TestFs t;
  for (std::string_view bad : {std::string_view(""), std::string_view("."), std::string_view(".."),
                               std::string_view("a/b")}) {
    CAPTURE(bad);
    const int expected = bad.empty() ? EINVAL : EPERM;
    CHECK(t.create(root, bad).error() == expected);
    CHECK(t.mkdir(root, bad).error() == expected);
    CHECK(t.mknod(root, bad, S_IFIFO | 0644).error() == expected);
    CHECK(t.symlink(root, bad, "t").error() == expected);
  }
  CHECK(t.mkdir(root, std::string(256, 'd')).error() == ENAMETOOLONG);
  CHECK(t.mkdir(root, std::string(255, 'd')).ok());
}

TEST_CASE("memfs: creating inside a non-directory is ENOTDIR", "[memfs][create]") {
  TestFs t;
  Entry f = t.file(root, "f");
  CHECK(t.mkdir(f.ino, "x").error() == ENOTDIR);
  CHECK(t.create(f.ino, "x").error() == ENOTDIR);
  CHECK(t.symlink(f.ino, "x", "y").error() == ENOTDIR);
  CHECK(t.link(f.ino, f.ino, "x").error() == ENOTDIR);
}

TEST_CASE("memfs: creating inside a removed directory is ENOENT", "[memfs][create]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  REQUIRE(t.rmdir(root, "d").ok());
  CHECK(t.create(d.ino, "x").error() == ENOENT);
  CHECK(t.mkdir(d.ino, "x").error() == ENOENT);
}

TEST_CASE("memfs: mkdir counts links", "[memfs][create]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  CHECK(d.attr.nlink == 2);
  CHECK(S_ISDIR(d.attr.mode));
  CHECK(t.attr(root).nlink == 3);
  Entry sub = t.mkdir_ok(d.ino, "sub");
  CHECK(t.attr(d.ino).nlink == 3);
  t.file(d.ino, "file");  // files do not add links to the parent
  CHECK(t.attr(d.ino).nlink == 3);
  CHECK(t.attr(sub.ino).nlink == 2);
}

TEST_CASE("memfs: mknod types", "[memfs][create]") {
  TestFs t;
  Result<Entry> fifo = t.mknod(root, "fifo", S_IFIFO | 0644);
  REQUIRE(fifo.ok());
  CHECK(S_ISFIFO(fifo->attr.mode));
  CHECK(fifo->attr.rdev == 0);
  Result<Entry> sock = t.mknod(root, "sock", S_IFSOCK | 0644);
  REQUIRE(sock.ok());
  CHECK(S_ISSOCK(sock->attr.mode));
  Result<Entry> blk = t.mknod(root, "blk", S_IFBLK | 0600, 42);
  REQUIRE(blk.ok());
  CHECK(S_ISBLK(blk->attr.mode));
  CHECK(blk->attr.rdev == 42);
  Result<Entry> chr = t.mknod(root, "chr", S_IFCHR | 0600, 99);
  REQUIRE(chr.ok());
  CHECK(S_ISCHR(chr->attr.mode));
  CHECK(chr->attr.rdev == 99);
  CHECK(t.attr(chr->ino).rdev == 99);
  Result<Entry> reg = t.mknod(root, "reg", S_IFREG | 0600, 7);
  REQUIRE(reg.ok());
  CHECK(S_ISREG(reg->attr.mode));
  CHECK(reg->attr.rdev == 0);

  CHECK(t.mknod(root, "dir", S_IFDIR | 0755).error() == EINVAL);
  CHECK(t.mknod(root, "lnk", S_IFLNK | 0777).error() == EINVAL);
  CHECK(t.mknod(root, "none", 0644).error() == EINVAL);
  CHECK(t.fs->used_inodes() == 6);
}

TEST_CASE("memfs: symlink and readlink", "[memfs][create]") {
  TestFs t;
  Result<Entry> l = t.symlink(root, "link", "some/target");
  REQUIRE(l.ok());
  CHECK(l->attr.mode == (S_IFLNK | 0777));
  CHECK(l->attr.size == 11);
  CHECK(l->attr.nlink == 1);
  Result<std::string> target = run_coro(t.fs->readlink(t.ctx, l->ino));
  REQUIRE(target.ok());
  CHECK(*target == "some/target");

  Entry f = t.file(root, "f");
  CHECK(run_coro(t.fs->readlink(t.ctx, f.ino)).error() == EINVAL);
  CHECK(run_coro(t.fs->readlink(t.ctx, root)).error() == EINVAL);
  CHECK(t.symlink(root, "empty", "").error() == ENOENT);
  CHECK(t.symlink(root, "long", std::string(4096, 't')).error() == ENAMETOOLONG);
  CHECK(t.symlink(root, "max", std::string(4095, 't')).ok());
}

TEST_CASE("memfs: hard links share one inode", "[memfs][create]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "shared");
  Entry d = t.mkdir_ok(root, "d");
  Result<Entry> l = t.link(f.ino, d.ino, "alias");
  REQUIRE(l.ok());
  CHECK(l->ino == f.ino);
  CHECK(l->attr.nlink == 2);
  CHECK(t.attr(f.ino).nlink == 2);
  Result<Entry> via = t.lookup(d.ino, "alias");
  REQUIRE(via.ok());
  CHECK(via->ino == f.ino);

  // Writes through one name are visible through the other.
  Result<OpenReply> o = t.open(via->ino, O_WRONLY);
  REQUIRE(o.ok());
  REQUIRE(t.write(f.ino, o->fh, 0, "SHARED").ok());
  REQUIRE(t.release(f.ino, o->fh).ok());
  CHECK(t.contents(f.ino) == "SHARED");
  CHECK(t.fs->used_inodes() == 3);
}

TEST_CASE("memfs: link errors", "[memfs][create]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  Entry f = t.file(root, "f");
  CHECK(t.link(d.ino, root, "dlink").error() == EPERM);
  CHECK(t.link(f.ino, root, "..").error() == EPERM);
  CHECK(t.link(999, root, "x").error() == EBADF);
  // An unlinked file cannot be linked back in.
  REQUIRE(t.unlink(root, "f").ok());
  CHECK(t.link(f.ino, root, "back").error() == ENOENT);
}

TEST_CASE("memfs: a setgid directory passes its group down", "[memfs][create]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "shared", 02775);
  SetAttrIn chown;
  chown.valid = fuse::FATTR_GID;
  chown.gid = 500;
  REQUIRE(t.setattr(d.ino, chown).ok());
  REQUIRE((t.attr(d.ino).mode & S_ISGID) != 0);

  t.ctx = t.as(1000, 1000);
  Entry f = t.file(d.ino, "file");
  CHECK(f.attr.gid == 500);
  CHECK(f.attr.uid == 1000);
  CHECK((f.attr.mode & S_ISGID) == 0);
  Entry sub = t.mkdir_ok(d.ino, "sub", 0755);
  CHECK(sub.attr.gid == 500);
  CHECK((sub.attr.mode & S_ISGID) != 0);
  Result<Entry> n = t.mknod(d.ino, "fifo", S_IFIFO | 0644);
  REQUIRE(n.ok());
  CHECK(n->attr.gid == 500);

  // Without setgid the caller's group is used.
  Entry plain = t.mkdir_ok(root, "plain");
  Entry g = t.file(plain.ino, "g");
  CHECK(g.attr.gid == 1000);
}

}  // namespace
}  // namespace sandfs::memfs::testing
