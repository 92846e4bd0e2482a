// create, mknod, mkdir, symlink, link.
#include <sys/mount.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: create makes a file owned by the caller with the umask applied",
          "[passthrough][create]") {
  TestFs t;
  t.ctx.uid = 1000;
  t.ctx.gid = 2000;
  Result<CreateReply> c = t.create(root, "f", 0777, O_RDWR | O_CREAT, false, 022);
  REQUIRE(c.ok());
  CHECK(c->entry.ino != 0);
  CHECK(c->open.fh != 0);
  CHECK(c->entry.attr.mode == (S_IFREG | 0755));
  CHECK(c->entry.attr.uid == 1000);
  CHECK(c->entry.attr.gid == 2000);
  CHECK(t.fs->lookup_count(c->entry.ino) == 1);
  CHECK(*t.write(c->entry.ino, c->open.fh, 0, "data") == 4);
  CHECK(t.release(c->entry.ino, c->open.fh).ok());
  CHECK(t.contents(c->entry.ino) == "data");
  CHECK(t.lookup_ok(root, "f").ino == c->entry.ino);
}

TEST_CASE("passthrough: create of an existing name opens it and keeps its record",
          "[passthrough][create]") {
  TestFs t;
  t.ctx.uid = 1;
  Entry f = t.file_with(root, "f", "keep");
  t.ctx.uid = 2;
  Result<CreateReply> again = t.create(root, "f", 0600);
  REQUIRE(again.ok());
  CHECK(again->entry.ino == f.ino);
  CHECK(again->entry.attr.uid == 1);
  CHECK(again->entry.attr.mode == (S_IFREG | 0644));
  CHECK(*t.read(f.ino, again->open.fh, 0, 10) == "keep");
  CHECK(t.release(f.ino, again->open.fh).ok());
  CHECK(err(t.create(root, "f", 0644, O_RDWR | O_CREAT | O_EXCL)) == EEXIST);
  // O_TRUNC on the existing file empties it.
  Result<CreateReply> trunc = t.create(root, "f", 0644, O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(trunc.ok());
  CHECK(trunc->entry.attr.size == 0);
  CHECK(t.release(f.ino, trunc->open.fh).ok());
  CHECK(t.host_read("f").empty());
  // Over a directory.
  t.mkdir_ok(root, "d");
  CHECK(err(t.create(root, "d")) == EISDIR);
}

TEST_CASE("passthrough: mkdir and nested creation", "[passthrough][create]") {
  TestFs t;
  t.ctx.uid = 5;
  t.ctx.gid = 6;
  Entry a = t.mkdir_ok(root, "a", 0750);
  CHECK(a.attr.mode == (S_IFDIR | 0750));
  CHECK(a.attr.uid == 5);
  Entry b = t.mkdir_ok(a.ino, "b");
  Entry f = t.file(b.ino, "f");
  CHECK(t.walk("a/b/f").ino == f.ino);
  CHECK(err(t.mkdir(root, "a")) == EEXIST);
  CHECK(err(t.mkdir(f.ino, "x")) == ENOTDIR);
  CHECK(S_ISDIR(t.host_stat("a/b").st_mode));
}

TEST_CASE("passthrough: new objects take the group of a setgid directory",
          "[passthrough][create]") {
  TestFs t;
  Entry shared = t.mkdir_ok(root, "shared", 0775);
  REQUIRE(t.chown(shared.ino, 0, 500).ok());
  REQUIRE(t.chmod(shared.ino, 02775).ok());
  t.ctx.uid = 1000;
  t.ctx.gid = 1000;
  Entry f = t.file(shared.ino, "f", 0644);
  CHECK(f.attr.gid == 500);
  CHECK(f.attr.uid == 1000);
  Entry d = t.mkdir_ok(shared.ino, "sub", 0755);
  CHECK(d.attr.gid == 500);
  CHECK((d.attr.mode & S_ISGID) != 0);
  Result<Entry> n = t.mknod(shared.ino, "fifo", S_IFIFO | 0644);
  REQUIRE(n.ok());
  CHECK(n->attr.gid == 500);
  CHECK((n->attr.mode & S_ISGID) == 0);
  Result<Entry> l = t.symlink(shared.ino, "l", "x");
  REQUIRE(l.ok());
  CHECK(l->attr.gid == 500);
  // Not inherited from a plain directory.
  Entry plain = t.mkdir_ok(root, "plain");
  CHECK(t.file(plain.ino, "g").attr.gid == 1000);
}

TEST_CASE("passthrough: link makes a second name for the same inode", "[passthrough][create]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "shared data");
  Entry d = t.mkdir_ok(root, "d");
  Result<Entry> l = t.link(f.ino, d.ino, "hard");
  REQUIRE(l.ok());
  CHECK(l->ino == f.ino);
  CHECK(l->attr.nlink == 2);
  CHECK(t.fs->lookup_count(f.ino) == 2);
  CHECK(t.host_stat("d/hard").st_ino == t.host_stat("f").st_ino);
  HandleId fh = t.open_ok(l->ino, O_WRONLY);
  CHECK(*t.write(l->ino, fh, 0, "SHARED") == 6);
  CHECK(t.release(l->ino, fh).ok());
  CHECK(t.host_read("f") == "SHARED data");
  CHECK(err(t.link(f.ino, d.ino, "hard")) == EEXIST);
  CHECK(err(t.link(d.ino, root, "dirlink")) == EPERM);
  CHECK(err(t.link(12345, root, "x")) == EBADF);
  // A strict-mode symlink (a file) can be linked too, keeping its type.
  Result<Entry> s = t.symlink(root, "s", "tgt");
  REQUIRE(s.ok());
  Result<Entry> s2 = t.link(s->ino, root, "s2");
  REQUIRE(s2.ok());
  CHECK((s2->attr.mode & S_IFMT) == S_IFLNK);
}

TEST_CASE("passthrough: symlink targets are checked and round-trip", "[passthrough][create]") {
  TestFs t;
  CHECK(err(t.symlink(root, "empty", "")) == ENOENT);
  CHECK(err(t.symlink(root, "long", std::string(5000, 'a'))) == ENAMETOOLONG);
  const std::string target(4095, 'b');
  Result<Entry> l = t.symlink(root, "max", target);
  REQUIRE(l.ok());
  CHECK(*t.readlink(l->ino) == target);
  t.ctx.uid = 1234;
  t.ctx.gid = 2345;
  Result<Entry> owned = t.symlink(root, "owned", "x");
  REQUIRE(owned.ok());
  CHECK(owned->attr.uid == 1234);
  CHECK(owned->attr.gid == 2345);
  CHECK(owned->attr.mode == (S_IFLNK | 0777));
  CHECK(err(t.symlink(root, "owned", "y")) == EEXIST);
}

TEST_CASE("passthrough: a pre-existing host symlink reads but does not open",
          "[passthrough][create]") {
  TestFs t;
  REQUIRE(::symlink("/etc/hostname", t.host("hl").c_str()) == 0);
  Entry l = t.lookup_ok(root, "hl");
  CHECK((l.attr.mode & S_IFMT) == S_IFLNK);
  CHECK(*t.readlink(l.ino) == "/etc/hostname");
  CHECK(err(t.open(l.ino, O_RDONLY)) == ELOOP);
}

namespace {

// A ramfs mount (no user xattrs at all), when we may mount; empty path otherwise.
class NoXattrDir {
 public:
  NoXattrDir() {
    if (::geteuid() != 0) return;
    if (::mount("ramfs", dir_.path().c_str(), "ramfs", 0, "mode=0755") != 0) return;
    mounted_ = true;
  }
  ~NoXattrDir() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& path() const { return dir_.path(); }

 private:
  HostDir dir_;
  bool mounted_ = false;
};

}  // namespace

TEST_CASE("passthrough: strict refuses a filesystem without user xattrs at start-up",
          "[passthrough][create][xattrless]") {
  NoXattrDir nx;
  if (!nx.ok()) {
    WARN("cannot mount ramfs here; skipped");
    return;
  }
  PassthroughConfig c;
  c.root = nx.path();
  MakeResult r = make_passthrough(c);
  CHECK(!r);
  CHECK(r.error == "the filesystem under " + nx.path() +
                       " does not support user xattrs; use --stat-virtualization relaxed or off");
  c.readonly = true;  // probed by reading then, with the same answer
  CHECK(!make_passthrough(c));
}

TEST_CASE("passthrough: relaxed serves a filesystem without user xattrs and cleans up failures",
          "[passthrough][create][xattrless]") {
  NoXattrDir nx;
  if (!nx.ok()) {
    WARN("cannot mount ramfs here; skipped");
    return;
  }
  PassthroughConfig c;
  c.root = nx.path();
  c.stat_virtualization = StatVirtualization::relaxed;
  MakeResult made = make_passthrough(c);
  REQUIRE(made);
  auto fs = made.fs;
  RequestContext ctx;
  REQUIRE(run_io(fs->init({})).ok());
  // Regular files and directories are made without a record: host ownership.
  Result<CreateReply> f = run_io(fs->create(ctx, root, "f", 0644, O_RDWR | O_CREAT, 0, false));
  REQUIRE(f.ok());
  CHECK(f->entry.attr.uid == ::geteuid());
  REQUIRE(run_io(fs->release(ctx, f->entry.ino, f->open.fh, 0)).ok());
  Result<Entry> d = run_io(fs->mkdir(ctx, root, "d", 0755, 0));
  REQUIRE(d.ok());
  // A FIFO needs its record: refused, and no host file is left behind.
  Result<Entry> fifo = run_io(fs->mknod(ctx, root, "fifo", S_IFIFO | 0644, 0, 0));
  CHECK(err(fifo) == EOPNOTSUPP);
  struct stat st {};
  CHECK(::lstat((nx.path() + "/fifo").c_str(), &st) == -1);
  // chown has nowhere to go.
  SetAttrIn in;
  in.valid = fuse::FATTR_UID;
  in.uid = 42;
  CHECK(err(run_io(fs->setattr(ctx, f->entry.ino, in))) == EOPNOTSUPP);
}
