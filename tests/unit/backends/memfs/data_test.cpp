// open, read, write, release: handles, access modes, append, truncation, timestamps, killpriv.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

TEST_CASE("memfs: read and write basics", "[memfs][data]") {
  TestFs t;
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;

  SECTION("empty file reads nothing") {
    Result<std::string> r = t.read(ino, fh, 0, 10);
    REQUIRE(r.ok());
    CHECK(r->empty());
  }
  SECTION("write then read back, partial and beyond EOF") {
    Result<size_t> w = t.write(ino, fh, 0, "hello world");
    REQUIRE(w.ok());
    CHECK(*w == 11);
    CHECK(t.attr(ino).size == 11);
    CHECK(*t.read(ino, fh, 0, 100) == "hello world");
    CHECK(*t.read(ino, fh, 6, 3) == "wor");
    CHECK(*t.read(ino, fh, 6, 100) == "world");
    CHECK(t.read(ino, fh, 11, 10)->empty());
    CHECK(t.read(ino, fh, 1000, 10)->empty());
  }
  SECTION("writing at an offset leaves a zero gap") {
    REQUIRE(t.write(ino, fh, 5, "xy").ok());
    CHECK(t.attr(ino).size == 7);
    CHECK(*t.read(ino, fh, 0, 7) == std::string("\0\0\0\0\0xy", 7));
  }
  SECTION("overlapping writes") {
    REQUIRE(t.write(ino, fh, 0, "aaaaaaaa").ok());
    REQUIRE(t.write(ino, fh, 2, "bb").ok());
    REQUIRE(t.write(ino, fh, 6, "cccc").ok());
    CHECK(*t.read(ino, fh, 0, 100) == "aabbaacccc");
  }
  SECTION("1 MiB write and read across pages and iovecs") {
    std::string big(1 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i)
      big[i] = static_cast<char>('a' + (i * 7) % 26);
    Result<size_t> w = t.write(ino, fh, 3, big);
    REQUIRE(w.ok());
    CHECK(*w == big.size());
    Result<std::string> r = t.read(ino, fh, 3, static_cast<uint32_t>(big.size()));
    REQUIRE(r.ok());
    CHECK(*r == big);
    CHECK(t.attr(ino).size == big.size() + 3);
    CHECK(t.attr(ino).blocks == 257 * 8);
  }
  SECTION("zero-length write") {
    Result<size_t> w = t.write(ino, fh, 100, "");
    REQUIRE(w.ok());
    CHECK(*w == 0);
    CHECK(t.attr(ino).size == 0);
  }
  REQUIRE(t.release(ino, fh).ok());
}

TEST_CASE("memfs: handle validation", "[memfs][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "data");
  Entry g = t.file(root, "g");

  SECTION("unknown handles") {
    CHECK(t.read(f.ino, 9999, 0, 10).error() == EBADF);
    CHECK(t.write(f.ino, 9999, 0, "x").error() == EBADF);
    CHECK(t.release(f.ino, 9999).error() == EBADF);
    CHECK(run_coro(t.fs->flush(t.ctx, f.ino, 9999, 0)).error() == EBADF);
    CHECK(run_coro(t.fs->fsync(t.ctx, f.ino, 9999, false)).error() == EBADF);
  }
  SECTION("a handle used with another inode") {
    const HandleId fh = t.open_ok(f.ino);
    CHECK(t.read(g.ino, fh, 0, 10).error() == EBADF);
    CHECK(t.write(g.ino, fh, 0, "x").error() == EBADF);
    REQUIRE(t.release(f.ino, fh).ok());
  }
  SECTION("a released handle is gone") {
    const HandleId fh = t.open_ok(f.ino);
    REQUIRE(t.release(f.ino, fh).ok());
    CHECK(t.read(f.ino, fh, 0, 10).error() == EBADF);
    CHECK(t.release(f.ino, fh).error() == EBADF);
  }
  SECTION("writes through an O_RDONLY handle are EBADF") {
    const HandleId fh = t.open_ok(f.ino, O_RDONLY);
    CHECK(t.write(f.ino, fh, 0, "x").error() == EBADF);
    CHECK(t.contents(f.ino) == "data");
    REQUIRE(t.release(f.ino, fh).ok());
  }
  SECTION("reads through an O_WRONLY handle are EBADF") {
    const HandleId fh = t.open_ok(f.ino, O_WRONLY);
    CHECK(t.read(f.ino, fh, 0, 10).error() == EBADF);
    CHECK(t.write(f.ino, fh, 0, "D").ok());
    REQUIRE(t.release(f.ino, fh).ok());
  }
  SECTION("flush and fsync succeed on a valid handle") {
    const HandleId fh = t.open_ok(f.ino);
    CHECK(run_coro(t.fs->flush(t.ctx, f.ino, fh, 0)).ok());
    CHECK(run_coro(t.fs->fsync(t.ctx, f.ino, fh, true)).ok());
    REQUIRE(t.release(f.ino, fh).ok());
  }
  SECTION("a directory handle is not a file handle") {
    Result<OpenReply> d = t.opendir(root);
    REQUIRE(d.ok());
    CHECK(t.read(root, d->fh, 0, 10).error() == EBADF);
    CHECK(t.release(root, d->fh).error() == EBADF);
  }
}

TEST_CASE("memfs: open errors", "[memfs][data]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  CHECK(t.open(d.ino).error() == EISDIR);
  CHECK(t.open(root, O_RDONLY).error() == EISDIR);
  Result<Entry> l = t.symlink(root, "l", "x");
  REQUIRE(l.ok());
  CHECK(t.open(l->ino).error() == ELOOP);
}

TEST_CASE("memfs: O_APPEND handles write at end of file", "[memfs][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "12345");
  const HandleId fh = t.open_ok(f.ino, O_WRONLY | O_APPEND);
  Result<size_t> w = t.write(f.ino, fh, 0, "abc");
  REQUIRE(w.ok());
  CHECK(t.contents(f.ino) == "12345abc");
  REQUIRE(t.release(f.ino, fh).ok());
}

TEST_CASE("memfs: writeback cache widens O_WRONLY and ignores O_APPEND", "[memfs][data]") {
  MemFsConfig cfg;
  cfg.writeback = true;
  SessionParams params;
  params.writeback_cache = true;
  TestFs t(cfg, params);
  Entry f = t.file_with(root, "f", "12345");
  const HandleId fh = t.open_ok(f.ino, O_WRONLY | O_APPEND);
  Result<std::string> r = t.read(f.ino, fh, 0, 10);
  REQUIRE(r.ok());
  CHECK(*r == "12345");
  REQUIRE(t.write(f.ino, fh, 0, "ab").ok());  // the kernel chose the offset
  CHECK(t.contents(f.ino) == "ab345");
  REQUIRE(t.release(f.ino, fh).ok());
  // O_RDONLY stays read-only.
  const HandleId ro = t.open_ok(f.ino, O_RDONLY);
  CHECK(t.write(f.ino, ro, 0, "x").error() == EBADF);
  REQUIRE(t.release(f.ino, ro).ok());
}

TEST_CASE("memfs: writeback configured but not negotiated changes nothing", "[memfs][data]") {
  MemFsConfig cfg;
  cfg.writeback = true;
  TestFs t(cfg);  // the kernel did not agree
  Entry f = t.file_with(root, "f", "12345");
  const HandleId fh = t.open_ok(f.ino, O_WRONLY | O_APPEND);
  CHECK(t.read(f.ino, fh, 0, 10).error() == EBADF);
  REQUIRE(t.write(f.ino, fh, 0, "ab").ok());
  CHECK(t.contents(f.ino) == "12345ab");
  REQUIRE(t.release(f.ino, fh).ok());
}

TEST_CASE("memfs: open with O_TRUNC empties the file and frees its pages", "[memfs][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", std::string(9000, 'q'));
  CHECK(t.fs->used_bytes() == 3 * 4096);
  const HandleId fh = t.open_ok(f.ino, O_RDWR | O_TRUNC);
  Attr a = t.attr(f.ino);
  CHECK(a.size == 0);
  CHECK(a.blocks == 0);
  CHECK(t.fs->used_bytes() == 0);
  REQUIRE(t.write(f.ino, fh, 0, "new").ok());
  CHECK(t.contents(f.ino) == "new");
  REQUIRE(t.release(f.ino, fh).ok());
}

TEST_CASE("memfs: write and offset limits", "[memfs][data]") {
  TestFs t;
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  const uint64_t max = std::numeric_limits<int64_t>::max();
  CHECK(t.write(ino, fh, max, "x").error() == EFBIG);
  CHECK(t.write(ino, fh, max - 1, "xy").error() == EFBIG);
  CHECK(t.write(ino, fh, std::numeric_limits<uint64_t>::max(), "x").error() == EFBIG);
  CHECK(t.write(ino, fh, max - 1, "x").ok());
  CHECK(t.attr(ino).size == max);
  CHECK(t.attr(ino).blocks == 8);
  Result<std::string> tail = t.read(ino, fh, max - 1, 10);
  REQUIRE(tail.ok());
  CHECK(*tail == "x");
  CHECK(t.read(ino, fh, std::numeric_limits<uint64_t>::max() - 2, 10)->empty());
  REQUIRE(t.release(ino, fh).ok());
}

TEST_CASE("memfs: timestamps on write and read", "[memfs][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "x");
  SetAttrIn old;
  old.valid = fuse::FATTR_ATIME | fuse::FATTR_MTIME;
  old.atime = {1000, 0};
  old.mtime = {1000, 0};
  REQUIRE(t.setattr(f.ino, old).ok());
  const HandleId fh = t.open_ok(f.ino);
  REQUIRE(t.read(f.ino, fh, 0, 1).ok());
  Attr after_read = t.attr(f.ino);
  CHECK(after_read.atime.sec == 1000);  // reads never touch atime
  CHECK(after_read.mtime.sec == 1000);
  REQUIRE(t.write(f.ino, fh, 0, "y").ok());
  Attr after_write = t.attr(f.ino);
  CHECK(after_write.mtime.sec > 1000);
  CHECK(after_write.ctime.sec > 1000);
  CHECK(after_write.atime.sec == 1000);
  REQUIRE(t.release(f.ino, fh).ok());
}

TEST_CASE("memfs: killpriv on write / open and create", "[memfs][data][killpriv]") {
  TestFs t;
  auto setmode = [&](InodeId ino, uint32_t mode) {
    SetAttrIn in;
    in.valid = fuse::FATTR_MODE;
    in.mode = mode;
    REQUIRE(t.setattr(ino, in).ok());
  };
  Entry f = t.file_with(root, "f", "x");

  SECTION("write with kill_suidgid clears suid and sgid with group-exec") {
    setmode(f.ino, 06755);
    const HandleId fh = t.open_ok(f.ino);
    REQUIRE(t.write(f.ino, fh, 0, "y", false).ok());
    CHECK((t.attr(f.ino).mode & 07777) == 06755);
    REQUIRE(t.write(f.ino, fh, 0, "y", true).ok());
    CHECK(t.attr(f.ino).mode == (S_IFREG | 0755));
    REQUIRE(t.release(f.ino, fh).ok());
  }
  SECTION("sgid without group-exec is kept") {
    setmode(f.ino, 06745);
    const HandleId fh = t.open_ok(f.ino);
    REQUIRE(t.write(f.ino, fh, 0, "y", true).ok());
    CHECK(t.attr(f.ino).mode == (S_IFREG | 02745));
    REQUIRE(t.release(f.ino, fh).ok());
  }
  SECTION("open: only together with O_TRUNC") {
    setmode(f.ino, 04755);
    Result<OpenReply> plain = t.open(f.ino, O_RDWR, true);
    REQUIRE(plain.ok());
    CHECK((t.attr(f.ino).mode & 07777) == 04755);
    Result<OpenReply> trunc = t.open(f.ino, O_RDWR | O_TRUNC, true);
    REQUIRE(trunc.ok());
    CHECK((t.attr(f.ino).mode & 07777) == 0755);
    REQUIRE(t.release(f.ino, plain->fh).ok());
    REQUIRE(t.release(f.ino, trunc->fh).ok());
  }
  SECTION("create of an existing file with O_TRUNC") {
    setmode(f.ino, 04755);
    Result<CreateReply> r = t.create(root, "f", 0644, O_RDWR | O_CREAT | O_TRUNC, true);
    REQUIRE(r.ok());
    CHECK((r->entry.attr.mode & 07777) == 0755);
    REQUIRE(t.release(f.ino, r->open.fh).ok());
  }
}

}  // namespace
}  // namespace sandfs::memfs::testing
