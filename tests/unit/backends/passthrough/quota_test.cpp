// --quota: a cap on the bytes stored under the root.
#include <linux/falloc.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

namespace {

Tweak quota(uint64_t bytes, std::function<void(const std::string& root)> prepare = {}) {
  return [=](PassthroughConfig& c) {
    c.quota_bytes = bytes;
    if (prepare) prepare(c.root);
  };
}

void write_host(const std::string& path, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  std::string data(size, 'h');
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(size));
  ::close(fd);
}

}  // namespace

TEST_CASE("passthrough: writes within the quota succeed and past it fail whole",
          "[passthrough][quota]") {
  TestFs t(quota(64 * 1024));
  REQUIRE(t.fs->quota_ready());
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  CHECK(*t.write(ino, fh, 0, std::string(64 * 1024, 'a')) == 64 * 1024);
  CHECK(t.fs->quota_used() == 64 * 1024);
  // One byte more does not fit, and nothing of it lands.
  CHECK(err(t.write(ino, fh, 64 * 1024, "b")) == ENOSPC);
  CHECK(t.host_stat("f").st_size == 64 * 1024);
  // A write that straddles the end: all or nothing.
  CHECK(err(t.write(ino, fh, 60 * 1024, std::string(8 * 1024, 'c'))) == ENOSPC);
  CHECK(t.host_read("f") == std::string(64 * 1024, 'a'));
  // Rewriting what is there is free, however often.
  for (int i = 0; i < 1000; ++i)
    REQUIRE(*t.write(ino, fh, 1024, std::string(1024, 'r')) == 1024);
  CHECK(t.fs->quota_used() == 64 * 1024);
  CHECK(t.release(ino, fh).ok());
}

TEST_CASE("passthrough: truncate fallocate and copy_file_range are charged",
          "[passthrough][quota]") {
  TestFs t(quota(10000));
  Entry f = t.file(root, "f");
  CHECK(err(t.truncate(f.ino, 10001)) == ENOSPC);
  CHECK(t.host_stat("f").st_size == 0);
  REQUIRE(t.truncate(f.ino, 6000).ok());
  CHECK(t.fs->quota_used() == 6000);
  REQUIRE(t.truncate(f.ino, 1000).ok());
  CHECK(t.fs->quota_used() == 1000);

  HandleId fh = t.open_ok(f.ino, O_RDWR);
  CHECK(err(t.fallocate(f.ino, fh, 0, 20000, 0)) == ENOSPC);
  CHECK(t.host_stat("f").st_size == 1000);
  REQUIRE(t.fallocate(f.ino, fh, 0, 5000, 0).ok());
  CHECK(t.fs->quota_used() == 5000);
  // Space past the end that no size shows cannot be counted: refused.
  CHECK(err(t.fallocate(f.ino, fh, 0, 8000, FALLOC_FL_KEEP_SIZE)) == EOPNOTSUPP);
  // Within the file it is fine, and punching holes is free.
  CHECK(t.fallocate(f.ino, fh, 0, 4000, FALLOC_FL_KEEP_SIZE).ok());
  CHECK(t.fallocate(f.ino, fh, 0, 4096, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE).ok());
  CHECK(t.fs->quota_used() == 5000);

  Result<CreateReply> g = t.create(root, "g");
  REQUIRE(g.ok());
  CHECK(err(t.copy(f.ino, fh, 0, g->entry.ino, g->open.fh, 1, 5000)) == ENOSPC);
  CHECK(t.host_stat("g").st_size == 0);
  Result<size_t> n = t.copy(f.ino, fh, 0, g->entry.ino, g->open.fh, 0, 4000);
  REQUIRE(n.ok());
  CHECK(*n == 4000);
  CHECK(t.fs->quota_used() == 9000);
  // Asking for more than the source has charges only what it has.
  Result<size_t> tail = t.copy(f.ino, fh, 4500, g->entry.ino, g->open.fh, 4000, 1 << 20);
  REQUIRE(tail.ok());
  CHECK(*tail == 500);
  CHECK(t.fs->quota_used() == 9500);
  CHECK(t.release(f.ino, fh).ok());
  CHECK(t.release(g->entry.ino, g->open.fh).ok());
}

TEST_CASE("passthrough: removing files gives their bytes back", "[passthrough][quota]") {
  TestFs t(quota(8192));
  Entry a = t.file_with(root, "a", std::string(8192, 'a'));
  Entry b = t.file(root, "b");
  HandleId fh = t.open_ok(b.ino, O_WRONLY);
  CHECK(err(t.write(b.ino, fh, 0, "x")) == ENOSPC);
  REQUIRE(t.unlink(root, "a").ok());
  CHECK(t.fs->quota_used() == 0);
  CHECK(*t.write(b.ino, fh, 0, std::string(4096, 'b')) == 4096);
  // Rename over a file frees the file replaced; a hard link frees nothing until the last name.
  Entry c = t.file_with(root, "c", std::string(2048, 'c'));
  CHECK(t.fs->quota_used() == 6144);
  REQUIRE(t.rename(root, "c", root, "b").ok());
  CHECK(t.fs->quota_used() == 2048);
  REQUIRE(t.link(c.ino, root, "c2").ok());
  REQUIRE(t.unlink(root, "b").ok());
  CHECK(t.fs->quota_used() == 2048);
  REQUIRE(t.unlink(root, "c2").ok());
  CHECK(t.fs->quota_used() == 0);
  // O_TRUNC gives back too.
  Entry d = t.file_with(root, "d", std::string(1000, 'd'));
  HandleId tr = t.open_ok(d.ino, O_RDWR | O_TRUNC);
  CHECK(t.fs->quota_used() == 0);
  CHECK(t.release(d.ino, tr).ok());
  CHECK(t.release(b.ino, fh).ok());
  (void)a;
}

TEST_CASE("passthrough: what is there at mount counts against the quota", "[passthrough][quota]") {
  TestFs t(quota(1 << 20, [](const std::string& r) {
    write_host(r + "/existing", 300000);
    REQUIRE(::mkdir((r + "/sub").c_str(), 0755) == 0);
    write_host(r + "/sub/more", 200000);
    REQUIRE(::link((r + "/sub/more").c_str(), (r + "/sub/again").c_str()) == 0);
  }));
  REQUIRE(t.fs->quota_ready());
  CHECK(t.fs->quota_used() == 500000);  // the hard link counted once
  Result<StatFs> st = t.statfs();
  REQUIRE(st.ok());
  CHECK(st->bsize == 4096);
  CHECK(st->blocks == (1 << 20) / 4096);
  CHECK(st->bavail == ((1 << 20) - 500000) / 4096);
  CHECK(st->bfree == st->bavail);
  Entry f = t.file(root, "f");
  HandleId fh = t.open_ok(f.ino, O_WRONLY);
  CHECK(err(t.write(f.ino, fh, 0, std::string((1 << 20) - 500000 + 1, 'x'))) == ENOSPC);
  CHECK(*t.write(f.ino, fh, 0, std::string((1 << 20) - 500000, 'x')) == (1 << 20) - 500000);
  CHECK(t.statfs()->bavail == 0);
  CHECK(t.release(f.ino, fh).ok());
  // Deleting a pre-existing file frees its bytes.
  REQUIRE(t.unlink(root, "existing").ok());
  CHECK(t.fs->quota_used() == (1 << 20) - 300000);
}

TEST_CASE("passthrough: concurrent appenders each pay once", "[passthrough][quota]") {
  TestFs t(quota(1 << 20));
  Entry f = t.file(root, "f");
  HandleId a = t.open_ok(f.ino, O_WRONLY);
  HandleId b = t.open_ok(f.ino, O_WRONLY);
  for (int i = 0; i < 64; ++i) {
    REQUIRE(*t.write(f.ino, (i % 2) ? a : b, static_cast<uint64_t>(i) * 1000,
                     std::string(1000, 'x')) == 1000);
  }
  CHECK(t.fs->quota_used() == 64000);
  CHECK(t.release(f.ino, a).ok());
  CHECK(t.release(f.ino, b).ok());
}

TEST_CASE("passthrough: without a quota nothing is counted and statfs is the host's",
          "[passthrough][quota]") {
  TestFs t;
  CHECK(!t.fs->quota_used());
  Entry f = t.file(root, "f");
  HandleId fh = t.open_ok(f.ino, O_WRONLY);
  CHECK(*t.write(f.ino, fh, 0, std::string(4 << 20, 'x')) == (4u << 20));
  CHECK(t.release(f.ino, fh).ok());
  Result<StatFs> st = t.statfs(f.ino);
  REQUIRE(st.ok());
  CHECK(st->bsize > 0);
  CHECK(st->blocks > 0);
  CHECK(st->namelen == 255);
  CHECK(err(t.statfs(9999)) == EBADF);
}

TEST_CASE("passthrough: host_fd for readable handles and copy_from_host_fd charged to the quota",
          "[passthrough][quota]") {
  // The source: another PassthroughFs's file, as DualFs copy-up hands it over.
  TestFs src;
  Entry s = src.file_with(root, "s", std::string(6000, 's'));
  HandleId s_fh = src.open_ok(s.ino, O_RDONLY);
  const int fd_in = src.fs->host_fd(s.ino, s_fh);
  REQUIRE(fd_in >= 0);
  HandleId s_wo = src.open_ok(s.ino, O_WRONLY);
  CHECK(src.fs->host_fd(s.ino, s_wo) == -1);  // not readable
  CHECK(src.fs->host_fd(s.ino, s_fh + 1000) == -1);

  TestFs t(quota(5000));
  Result<CreateReply> g = t.create(root, "g");
  REQUIRE(g.ok());
  const InodeId g_ino = g->entry.ino;
  const HandleId g_fh = g->open.fh;
  Result<size_t> over = run_io(t.fs->copy_from_host_fd(t.ctx, fd_in, 0, g_ino, g_fh, 0, 6000));
  CHECK(err(over) == ENOSPC);
  CHECK(t.host_stat("g").st_size == 0);
  Result<size_t> n = run_io(t.fs->copy_from_host_fd(t.ctx, fd_in, 0, g_ino, g_fh, 0, 4000));
  REQUIRE(n.ok());
  CHECK(*n == 4000);
  CHECK(t.fs->quota_used() == 4000);
  CHECK(t.host_read("g") == std::string(4000, 's'));
  // Past the source's end: 0, nothing charged.
  Result<size_t> end = run_io(t.fs->copy_from_host_fd(t.ctx, fd_in, 6000, g_ino, g_fh, 4000, 100));
  REQUIRE(end.ok());
  CHECK(*end == 0);
  CHECK(t.fs->quota_used() == 4000);
  CHECK(t.release(g_ino, g_fh).ok());
  CHECK(src.release(s.ino, s_fh).ok());
  CHECK(src.release(s.ino, s_wo).ok());
}
