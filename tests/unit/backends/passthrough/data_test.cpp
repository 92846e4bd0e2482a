// open, read, write, flush, release, fsync, fallocate, lseek, copy_file_range.
#include <linux/falloc.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: read a host file through a handle", "[passthrough][data]") {
  TestFs t;
  t.host_write("f", "hello world");
  Entry f = t.lookup_ok(root, "f");
  HandleId fh = t.open_ok(f.ino, O_RDONLY);
  CHECK(*t.read(f.ino, fh, 0, 5) == "hello");
  CHECK(*t.read(f.ino, fh, 6, 100) == "world");
  CHECK(t.read(f.ino, fh, 100, 10)->empty());
  CHECK(t.release(f.ino, fh).ok());
  CHECK(err(t.read(f.ino, fh, 0, 5)) == EBADF);
}

TEST_CASE("passthrough: write then read back and see it on the host", "[passthrough][data]") {
  TestFs t;
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  std::string big(1 << 20, 'z');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  CHECK(*t.write(ino, fh, 0, big) == big.size());
  CHECK(*t.write(ino, fh, 10, "HELLO") == 5);
  big.replace(10, 5, "HELLO");
  CHECK(*t.read(ino, fh, 0, static_cast<uint32_t>(big.size())) == big);
  CHECK(t.release(ino, fh).ok());
  CHECK(t.host_read("f") == big);
  CHECK(t.attr(ino).size == big.size());
}

TEST_CASE("passthrough: handles check their access mode and inode", "[passthrough][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "abc");
  Entry g = t.file_with(root, "g", "abc");
  HandleId ro = t.open_ok(f.ino, O_RDONLY);
  CHECK(err(t.write(f.ino, ro, 0, "x")) == EBADF);
  HandleId wo = t.open_ok(f.ino, O_WRONLY);
  CHECK(err(t.read(f.ino, wo, 0, 3)) == EBADF);
  // A valid handle paired with another inode is refused.
  CHECK(err(t.read(g.ino, ro, 0, 3)) == EBADF);
  CHECK(err(t.read(f.ino, 9999, 0, 3)) == EBADF);
  CHECK(t.release(f.ino, ro).ok());
  CHECK(t.release(f.ino, wo).ok());
  CHECK(err(t.release(f.ino, wo)) == EBADF);
}

TEST_CASE("passthrough: open with O_TRUNC and O_APPEND", "[passthrough][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "0123456789");
  HandleId app = t.open_ok(f.ino, O_WRONLY | O_APPEND);
  CHECK(*t.write(f.ino, app, 0, "AB") == 2);
  CHECK(t.release(f.ino, app).ok());
  CHECK(t.host_read("f") == "0123456789AB");
  HandleId tr = t.open_ok(f.ino, O_RDWR | O_TRUNC);
  CHECK(t.attr(f.ino).size == 0);
  CHECK(t.release(f.ino, tr).ok());
  Entry d = t.mkdir_ok(root, "d");
  CHECK(err(t.open(d.ino)) == EISDIR);
  CHECK(err(t.open(999)) == EBADF);
}

TEST_CASE("passthrough: writeback caching widens write-only opens and drops O_APPEND",
          "[passthrough][data]") {
  SessionParams params;
  params.writeback_cache = true;
  TestFs t([](PassthroughConfig& c) { c.writeback = true; }, params);
  Entry f = t.file_with(root, "f", "abc");
  HandleId fh = t.open_ok(f.ino, O_WRONLY | O_APPEND);
  CHECK(*t.read(f.ino, fh, 0, 3) == "abc");  // readable: the kernel fills partial pages
  CHECK(*t.write(f.ino, fh, 1, "X") == 1);   // positional: the kernel computed the offset
  CHECK(t.release(f.ino, fh).ok());
  CHECK(t.host_read("f") == "aXc");
  CHECK(t.fs->capabilities().writeback_cache);
}

TEST_CASE("passthrough: fsync fallocate and lseek data and holes", "[passthrough][data]") {
  TestFs t;
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  CHECK(t.fallocate(ino, fh, 0, 8192, 0).ok());
  CHECK(t.attr(ino).size == 8192);
  CHECK(t.attr(ino).blocks >= 16);
  CHECK(t.fsync(ino, fh).ok());
  CHECK(t.fsync(ino, fh, true).ok());
  CHECK(err(t.fsync(ino, 777)) == EBADF);
  CHECK(err(t.fallocate(ino, 777, 0, 1, 0)) == EBADF);

  // A sparse file: data at 1 MiB only.
  Result<CreateReply> s = t.create(root, "sparse");
  REQUIRE(s.ok());
  CHECK(*t.write(s->entry.ino, s->open.fh, 1 << 20, "data") == 4);
  Result<uint64_t> data = t.lseek(s->entry.ino, s->open.fh, 0, SEEK_DATA);
  REQUIRE(data.ok());
  CHECK(*data == (1u << 20));
  Result<uint64_t> hole = t.lseek(s->entry.ino, s->open.fh, 0, SEEK_HOLE);
  REQUIRE(hole.ok());
  CHECK(*hole == 0);
  CHECK(err(t.lseek(s->entry.ino, s->open.fh, (1 << 20) + 100, SEEK_DATA)) == ENXIO);
  CHECK(*t.lseek(s->entry.ino, s->open.fh, 5, SEEK_SET) == 5);
  CHECK(err(t.lseek(s->entry.ino, 777, 0, SEEK_SET)) == EBADF);
  // Punch the data away again.
  CHECK(t.fallocate(s->entry.ino, s->open.fh, 1 << 20, 4096,
                    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
            .ok());
  CHECK(*t.read(s->entry.ino, s->open.fh, 1 << 20, 4) == std::string(4, '\0'));
  CHECK(t.release(s->entry.ino, s->open.fh).ok());
  CHECK(t.release(ino, fh).ok());
}

TEST_CASE("passthrough: copy_file_range copies between handles", "[passthrough][data]") {
  TestFs t;
  Entry a = t.file_with(root, "a", "hello, world!!");
  Result<CreateReply> b = t.create(root, "b");
  REQUIRE(b.ok());
  HandleId in = t.open_ok(a.ino, O_RDONLY);
  Result<size_t> n = t.copy(a.ino, in, 0, b->entry.ino, b->open.fh, 0, 14);
  REQUIRE(n.ok());
  CHECK(*n == 14);
  Result<size_t> part = t.copy(a.ino, in, 7, b->entry.ino, b->open.fh, 100, 5);
  REQUIRE(part.ok());
  CHECK(*part == 5);
  CHECK(t.host_read("b").substr(0, 14) == "hello, world!!");
  CHECK(t.host_read("b").substr(100) == "world");
  CHECK(err(t.copy(a.ino, 777, 0, b->entry.ino, b->open.fh, 0, 1)) == EBADF);
  CHECK(err(t.copy(a.ino, in, 0, b->entry.ino, 777, 0, 1)) == EBADF);
  // Into a read-only handle: EBADF.
  CHECK(err(t.copy(a.ino, in, 0, a.ino, in, 50, 1)) == EBADF);
  CHECK(err(run_io(t.fs->copy_file_range(t.ctx, a.ino, in, 0, b->entry.ino, b->open.fh, 0, 1,
                                         1))) == EINVAL);
  CHECK(t.release(a.ino, in).ok());
  CHECK(t.release(b->entry.ino, b->open.fh).ok());
}

TEST_CASE("passthrough: writes clear setuid and setgid when the kernel asks",
          "[passthrough][data][killpriv]") {
  TestFs t;
  Entry f = t.file(root, "f", 06755);
  HandleId fh = t.open_ok(f.ino, O_RDWR);
  CHECK(*t.write(f.ino, fh, 0, "x", false) == 1);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 06755));
  CHECK(*t.write(f.ino, fh, 0, "x", true) == 1);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 0755));
  CHECK(t.host_record("f") == record_bytes(0, 0, S_IFREG | 0755));
  // Setgid without group-exec marks locking, not privilege: it stays.
  REQUIRE(t.chmod(f.ino, 02644).ok());
  CHECK(*t.write(f.ino, fh, 0, "x", true) == 1);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 02644));
  // Nothing to clear: nothing rewritten.
  REQUIRE(t.chmod(f.ino, 0755).ok());
  CHECK(*t.write(f.ino, fh, 0, "x", true) == 1);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 0755));
  CHECK(t.release(f.ino, fh).ok());
}

TEST_CASE("passthrough: truncation and chown clear setuid", "[passthrough][data][killpriv]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "content");
  REQUIRE(t.chmod(f.ino, 04755).ok());
  HandleId plain = t.open_ok(f.ino, O_RDWR | O_TRUNC);  // not asked: kept
  CHECK(t.attr(f.ino).mode == (S_IFREG | 04755));
  CHECK(t.release(f.ino, plain).ok());
  Result<OpenReply> killing = t.open(f.ino, O_RDWR | O_TRUNC, true);
  REQUIRE(killing.ok());
  CHECK(t.attr(f.ino).mode == (S_IFREG | 0755));
  CHECK(t.release(f.ino, killing->fh).ok());

  REQUIRE(t.chmod(f.ino, 04755).ok());
  REQUIRE(t.truncate(f.ino, 3).ok());
  CHECK(t.attr(f.ino).mode == (S_IFREG | 04755));
  Result<AttrReply> a = t.truncate(f.ino, 2, fuse::FATTR_KILL_SUIDGID);
  REQUIRE(a.ok());
  CHECK(a->attr.mode == (S_IFREG | 0755));
  CHECK(a->attr.size == 2);

  REQUIRE(t.chmod(f.ino, 06755).ok());
  a = t.chown(f.ino, 1000, 1000);
  REQUIRE(a.ok());
  CHECK(a->attr.mode == (S_IFREG | 0755));
  CHECK(a->attr.uid == 1000);
  // Directories keep theirs on chown.
  Entry d = t.mkdir_ok(root, "d", 02755);
  a = t.chown(d.ino, 5, 5);
  REQUIRE(a.ok());
  CHECK(a->attr.mode == (S_IFDIR | 02755));
}

TEST_CASE("passthrough: a write by an unprivileged server clears the host's own setuid",
          "[passthrough][data][killpriv]") {
  // A host file with no record shows the host mode; the host kernel clears setuid when a process
  // without CAP_FSETID writes, and a privileged server clears it itself.
  TestFs t;
  t.host_write("f", "x", 0755);
  REQUIRE(::chmod(t.host("f").c_str(), 04755) == 0);
  Entry f = t.lookup_ok(root, "f");
  CHECK(f.attr.mode == (S_IFREG | 04755));
  HandleId fh = t.open_ok(f.ino, O_WRONLY);
  CHECK(*t.write(f.ino, fh, 0, "y", true) == 1);
  CHECK(t.release(f.ino, fh).ok());
  CHECK((t.host_stat("f").st_mode & S_ISUID) == 0);
  CHECK((t.attr(f.ino).mode & S_ISUID) == 0);
}

TEST_CASE("passthrough: setattr sets times and sizes", "[passthrough][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", std::string(100, 'x'));
  REQUIRE(t.truncate(f.ino, 50).ok());
  CHECK(t.host_stat("f").st_size == 50);
  REQUIRE(t.truncate(f.ino, 1000).ok());
  CHECK(t.attr(f.ino).size == 1000);
  SetAttrIn times;
  times.valid = fuse::FATTR_ATIME | fuse::FATTR_MTIME;
  times.atime = Timespec{1000, 5};
  times.mtime = Timespec{2000, 7};
  Result<AttrReply> a = t.setattr(f.ino, times);
  REQUIRE(a.ok());
  CHECK(a->attr.atime.sec == 1000);
  CHECK(a->attr.atime.nsec == 5);
  CHECK(a->attr.mtime.sec == 2000);
  CHECK(t.host_stat("f").st_mtim.tv_sec == 2000);
  SetAttrIn now;
  now.valid = fuse::FATTR_ATIME_NOW | fuse::FATTR_MTIME_NOW;
  a = t.setattr(f.ino, now);
  REQUIRE(a.ok());
  CHECK(a->attr.mtime.sec > 2000);
  Entry d = t.mkdir_ok(root, "d");
  CHECK(err(t.truncate(d.ino, 0)) == EISDIR);
  Result<Entry> fifo = t.mknod(root, "fifo", S_IFIFO | 0644);
  REQUIRE(fifo.ok());
  CHECK(err(t.truncate(fifo->ino, 10)) == EINVAL);
  Result<Entry> l = t.symlink(root, "l", "x");
  REQUIRE(l.ok());
  a = t.setattr(l->ino, times);
  REQUIRE(a.ok());
  CHECK(a->attr.mtime.sec == 2000);
  // Timestamps on a real host symlink (relaxed/off) too.
  REQUIRE(::symlink("target", t.host("hostlink").c_str()) == 0);
  Entry hl = t.lookup_ok(root, "hostlink");
  a = t.setattr(hl.ino, times);
  REQUIRE(a.ok());
  CHECK(a->attr.mtime.sec == 2000);
}

TEST_CASE("passthrough: chown and killing writes remove a file capability",
          "[passthrough][data][killpriv]") {
  if (::geteuid() != 0) {
    WARN("setting security.capability needs CAP_SETFCAP; skipped");
    return;
  }
  // struct vfs_cap_data, revision 2, effective, CAP_NET_BIND_SERVICE permitted.
  const uint32_t cap[5] = {0x02000001, 1u << 10, 0, 0, 0};
  TestFs t;
  auto set_cap = [&](const char* name) {
    REQUIRE(::lsetxattr(t.host(name).c_str(), "security.capability", cap, sizeof cap, 0) == 0);
  };
  Entry f = t.file_with(root, "f", "x");
  set_cap("f");
  REQUIRE(t.chown(f.ino, 7, 7).ok());
  CHECK(!t.host_xattr("f", "security.capability"));

  Entry g = t.file_with(root, "g", "x");
  set_cap("g");
  HandleId fh = t.open_ok(g.ino, O_WRONLY);
  // (The host kernel drops a capability on any write to the file, even a privileged one.)
  CHECK(*t.write(g.ino, fh, 0, "y", true) == 1);
  CHECK(!t.host_xattr("g", "security.capability"));
  CHECK(t.release(g.ino, fh).ok());
}

TEST_CASE("passthrough: kernel passthrough gets the handle's host fd when nothing is lost",
          "[passthrough][data][kernel_passthrough]") {
  SessionParams params;
  params.passthrough = true;
  TestFs t({}, params);
  CHECK(t.fs->capabilities().passthrough);
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  REQUIRE(c->open.backing_fd >= 0);
  struct stat st {};
  REQUIRE(::fstat(c->open.backing_fd, &st) == 0);
  CHECK(st.st_ino == t.host_stat("f").st_ino);
  CHECK(t.release(c->entry.ino, c->open.fh).ok());
  Result<OpenReply> o = t.open(c->entry.ino, O_RDONLY);
  REQUIRE(o.ok());
  CHECK(o->backing_fd >= 0);
  CHECK(t.release(c->entry.ino, o->fh).ok());
  // A setuid file must see its writes (to clear the bit): served by us, for every open.
  REQUIRE(t.chmod(c->entry.ino, 04755).ok());
  CHECK(t.open(c->entry.ino, O_RDONLY)->backing_fd == -1);
  CHECK(t.open(c->entry.ino, O_RDWR)->backing_fd == -1);
  // Host files without a record, and in off mode too.
  t.host_write("plain", "x");
  Entry plain = t.lookup_ok(root, "plain");
  CHECK(t.open(plain.ino, O_RDWR)->backing_fd >= 0);
  TestFs off([](PassthroughConfig& cfg) { cfg.stat_virtualization = StatVirtualization::off; },
             params);
  Entry of = off.file(root, "f");
  CHECK(off.open(of.ino, O_RDWR)->backing_fd >= 0);
}

TEST_CASE("passthrough: no kernel passthrough when not agreed or under a quota",
          "[passthrough][data][kernel_passthrough]") {
  TestFs plain;
  Entry f = plain.file(root, "f");
  CHECK(plain.open(f.ino, O_RDONLY)->backing_fd == -1);
  SessionParams params;
  params.passthrough = true;
  TestFs quota([](PassthroughConfig& c) { c.quota_bytes = 1 << 20; }, params);
  Result<CreateReply> c = quota.create(root, "f");
  REQUIRE(c.ok());
  CHECK(c->open.backing_fd == -1);
  CHECK(quota.open(c->entry.ino, O_RDONLY)->backing_fd == -1);
}
