// Regular files through the kernel: open/create, read/write, append, truncate, attributes, times,
// open-after-unlink, copy_file_range.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

timespec realtime_coarse() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return t;
}
timespec realtime() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return t;
}
// Nanoseconds since the epoch (fits in 64 bits until 2262).
int64_t ns(const timespec& t) {
  return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}
std::string ts(const timespec& t) {
  return std::to_string(t.tv_sec) + "." + std::to_string(t.tv_nsec);
}

}  // namespace

TEST_CASE("open and creat: new files / O_EXCL / O_CREAT on an existing file / O_TRUNC", "[files]") {
  MountedFs m;
  const std::string f = m.path("f");

  Fd fd(SYS(::creat(f.c_str(), 0640)));
  struct stat st = fstat_of(fd);
  CHECK(st.st_mode == (S_IFREG | 0640));
  CHECK(st.st_uid == ::getuid());
  CHECK(st.st_gid == ::getgid());
  CHECK(st.st_size == 0);
  CHECK(st.st_nlink == 1);
  pwrite_all(fd, "abc", 0);
  REQUIRE(fd.close() == 0);

  // The process umask (022, set by main) applies to the requested mode.
  Fd g(SYS(::open(m.path("g").c_str(), O_CREAT | O_WRONLY, 0666)));
  CHECK(fstat_of(g).st_mode == (S_IFREG | 0644));
  g.reset();

  CHECK_ERRNO(EEXIST, ::open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600));
  // O_CREAT without O_EXCL opens the existing file: same inode, contents kept, mode unchanged.
  Fd again = OPEN(f.c_str(), O_CREAT | O_RDWR, 0600);
  CHECK(fstat_of(again).st_ino == st.st_ino);
  CHECK(fstat_of(again).st_mode == (S_IFREG | 0640));
  CHECK(pread_all(again, 10, 0) == "abc");
  again.reset();

  Fd t = OPEN(f.c_str(), O_WRONLY | O_TRUNC);
  CHECK(fstat_of(t).st_size == 0);
  t.reset();
  CHECK(stat_of(f).st_size == 0);

  CHECK_ERRNO(ENOENT, ::open(m.path("missing").c_str(), O_RDONLY));
  CHECK_ERRNO(ENOENT, ::open(m.path("nodir/x").c_str(), O_CREAT | O_RDWR, 0644));
  CHECK_ERRNO(ENOTDIR, ::open(m.path("f/x").c_str(), O_CREAT | O_RDWR, 0644));
  CHECK_ERRNO(ENOTDIR, ::open(f.c_str(), O_RDONLY | O_DIRECTORY));
  SYS(::mkdir(m.path("d").c_str(), 0755));
  CHECK_ERRNO(EISDIR, ::open(m.path("d").c_str(), O_RDWR));
  CHECK_ERRNO(EISDIR, ::open(m.path("d").c_str(), O_CREAT | O_RDWR, 0644));
  CHECK_ERRNO(EEXIST, ::open(m.path("d").c_str(), O_CREAT | O_EXCL | O_RDWR, 0644));
  CHECK_ERRNO(ENAMETOOLONG, ::open(m.path(std::string(256, 'n')).c_str(), O_CREAT | O_RDWR, 0644));
  // The longest legal name works.
  Fd longest = OPEN(m.path(std::string(255, 'n')).c_str(), O_CREAT | O_RDWR, 0644);
}

TEST_CASE("read / write / pread and pwrite move the right bytes", "[files]") {
  MountedFs m;
  const std::string f = m.path("data");
  Fd fd = OPEN(f.c_str(), O_CREAT | O_RDWR, 0644);

  const std::string big = pattern(1, 0, 300'000);  // several pages, not page aligned
  pwrite_all(fd, big, 0);
  CHECK(fstat_of(fd).st_size == 300'000);
  CHECK(pread_all(fd, 400'000, 0) == big);

  // write() advances the file offset; read() continues from it.
  SYS(::lseek(fd, 0, SEEK_SET));
  CHECK(SYS(::write(fd, "HEAD", 4)) == 4);
  char buf[6] = {};
  CHECK(SYS(::read(fd, buf, 6)) == 6);
  CHECK(std::string(buf, 6) == big.substr(4, 6));
  CHECK(SYS(::lseek(fd, 0, SEEK_CUR)) == 10);

  // pwrite in the middle, across a page boundary, leaves the offset alone.
  pwrite_all(fd, "XYZXYZXYZ", 4090);
  CHECK(SYS(::lseek(fd, 0, SEEK_CUR)) == 10);
  std::string expect = big;
  expect.replace(0, 4, "HEAD");
  expect.replace(4090, 9, "XYZXYZXYZ");
  CHECK(pread_all(fd, 300'000, 0) == expect);

  // Reads at and past EOF, and one crossing it.
  CHECK(pread_all(fd, 10, 300'000).empty());
  CHECK(pread_all(fd, 10, 1'000'000).empty());
  CHECK(pread_all(fd, 100, 299'990) == expect.substr(299'990));

  // Writing past EOF leaves a hole that reads as zeros.
  pwrite_all(fd, "tail", 400'000);
  CHECK(fstat_of(fd).st_size == 400'004);
  CHECK(pread_all(fd, 100'000, 300'000) == std::string(100'000, '\0'));
  REQUIRE(fd.close() == 0);

  // A fresh open sees the same bytes.
  expect += std::string(100'000, '\0') + "tail";
  CHECK(read_file(f) == expect);

  // Reading needs a readable fd, writing a writable one.
  Fd ro = OPEN(f.c_str(), O_RDONLY);
  CHECK_ERRNO(EBADF, ::write(ro, "x", 1));
  Fd wo = OPEN(f.c_str(), O_WRONLY);
  CHECK_ERRNO(EBADF, ::read(wo, buf, 1));
}

TEST_CASE("O_APPEND writes always land at the end", "[files]") {
  MountedFs m;
  const std::string f = m.path("log");
  write_file(f, "start\n");
  Fd a = OPEN(f.c_str(), O_WRONLY | O_APPEND);
  Fd b = OPEN(f.c_str(), O_WRONLY | O_APPEND);
  Fd plain = OPEN(f.c_str(), O_WRONLY);
  CHECK(SYS(::write(a, "a1\n", 3)) == 3);
  CHECK(SYS(::write(b, "b1\n", 3)) == 3);
  // Even after seeking to the start, an O_APPEND write goes to the end.
  SYS(::lseek(a, 0, SEEK_SET));
  CHECK(SYS(::write(a, "a2\n", 3)) == 3);
  CHECK(SYS(::lseek(a, 0, SEEK_CUR)) == 15);
  // A non-append fd overwrites at its own offset.
  CHECK(SYS(::write(plain, "S", 1)) == 1);
  CHECK(read_file(f) == "Start\na1\nb1\na2\n");
}

TEST_CASE("truncate and ftruncate: shrink / grow with zeros / no stale bytes come back",
          "[files]") {
  MountedFs m;
  const std::string f = m.path("t");
  write_file(f, std::string(10'000, 'x'));

  SYS(::truncate(f.c_str(), 100));
  CHECK(stat_of(f).st_size == 100);
  CHECK(read_file(f) == std::string(100, 'x'));

  // Growing again must zero-fill: the bytes beyond 100 that were 'x' must not reappear, even
  // inside the page that still holds the first 100 bytes.
  SYS(::truncate(f.c_str(), 10'000));
  CHECK(stat_of(f).st_size == 10'000);
  CHECK(read_file(f) == std::string(100, 'x') + std::string(9'900, '\0'));

  Fd fd = OPEN(f.c_str(), O_RDWR);
  SYS(::ftruncate(fd, 5));
  CHECK(fstat_of(fd).st_size == 5);
  SYS(::ftruncate(fd, 3 << 20));  // 3 MiB of zeros after 5 bytes
  CHECK(fstat_of(fd).st_size == 3 << 20);
  CHECK(pread_all(fd, 3 << 20, 0) == std::string(5, 'x') + std::string((3 << 20) - 5, '\0'));
  SYS(::ftruncate(fd, 0));
  CHECK(pread_all(fd, 100, 0).empty());

  CHECK_ERRNO(EINVAL, ::ftruncate(fd, -1));
  SYS(::mkdir(m.path("d").c_str(), 0755));
  CHECK_ERRNO(EISDIR, ::truncate(m.path("d").c_str(), 0));
  CHECK_ERRNO(ENOENT, ::truncate(m.path("missing").c_str(), 0));
  Fd ro = OPEN(f.c_str(), O_RDONLY);
  CHECK_ERRNO(EINVAL, ::ftruncate(ro, 10));  // Linux: EINVAL for a read-only fd
}

TEST_CASE("chmod / chown and lchown change exactly what they are asked to", "[files][attr]") {
  MountedFs m;
  const std::string f = m.path("f");
  write_file(f, "x", 0644);

  SYS(::chmod(f.c_str(), 0600));
  CHECK(stat_of(f).st_mode == (S_IFREG | 0600));
  SYS(::chmod(f.c_str(), 07755));  // root may set suid, sgid and sticky
  CHECK(stat_of(f).st_mode == (S_IFREG | 07755));
  Fd fd = OPEN(f.c_str(), O_RDONLY);
  SYS(::fchmod(fd, 0444));
  CHECK(fstat_of(fd).st_mode == (S_IFREG | 0444));

  SYS(::chown(f.c_str(), 1234, 5678));
  CHECK(stat_of(f).st_uid == 1234u);
  CHECK(stat_of(f).st_gid == 5678u);
  SYS(::fchown(fd, static_cast<uid_t>(-1), 42));  // -1 leaves the owner alone
  CHECK(stat_of(f).st_uid == 1234u);
  CHECK(stat_of(f).st_gid == 42u);
  SYS(::chown(f.c_str(), 0, static_cast<gid_t>(-1)));
  CHECK(stat_of(f).st_uid == 0u);
  CHECK(stat_of(f).st_gid == 42u);

  // lchown changes the link, chown follows it.
  SYS(::symlink("f", m.path("l").c_str()));
  SYS(::lchown(m.path("l").c_str(), 777, 888));
  CHECK(lstat_of(m.path("l")).st_uid == 777u);
  CHECK(lstat_of(m.path("l")).st_gid == 888u);
  CHECK(stat_of(f).st_uid == 0u);
  SYS(::chown(m.path("l").c_str(), 99, 98));
  CHECK(stat_of(f).st_uid == 99u);
  CHECK(lstat_of(m.path("l")).st_uid == 777u);

  // Directories too.
  SYS(::mkdir(m.path("d").c_str(), 0755));
  SYS(::chmod(m.path("d").c_str(), 01777));
  SYS(::chown(m.path("d").c_str(), 5, 6));
  const struct stat d = stat_of(m.path("d"));
  CHECK(d.st_mode == (S_IFDIR | 01777));
  CHECK(d.st_uid == 5u);
  CHECK(d.st_gid == 6u);
}

TEST_CASE("chown of a setuid file clears setuid / also for root", "[files][attr]") {
  // Linux clears S_ISUID on any chown of a non-directory (and S_ISGID when group-exec is set),
  // whoever the caller is; tmpfs and ext4 do.
  MountedFs m;
  const std::string f = m.path("suid");
  write_file(f, "x", 0644);
  SYS(::chmod(f.c_str(), 06755));
  REQUIRE(stat_of(f).st_mode == (S_IFREG | 06755));
  SYS(::chown(f.c_str(), 1000, 1000));
  CHECK(stat_of(f).st_mode == (S_IFREG | 0755));
}

TEST_CASE("utimensat sets times to the nanosecond / UTIME_NOW and UTIME_OMIT work",
          "[files][attr]") {
  MountedFs m;
  const std::string f = m.path("f");
  write_file(f, "x");

  const timespec set[2] = {{1'000'000'001, 123'456'789}, {1'500'000'000, 987'654'321}};
  SYS(::utimensat(AT_FDCWD, f.c_str(), set, 0));
  struct stat st = stat_of(f);
  CHECK(ts(st.st_atim) == "1000000001.123456789");
  CHECK(ts(st.st_mtim) == "1500000000.987654321");

  // UTIME_OMIT keeps atime; UTIME_NOW sets mtime to the current time.
  const timespec before = realtime_coarse();
  const timespec now_omit[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  SYS(::utimensat(AT_FDCWD, f.c_str(), now_omit, 0));
  const timespec after = realtime();
  st = stat_of(f);
  CHECK(ts(st.st_atim) == "1000000001.123456789");
  INFO("before " << ts(before) << " mtime " << ts(st.st_mtim) << " after " << ts(after));
  CHECK(ns(before) <= ns(st.st_mtim));
  CHECK(ns(st.st_mtim) <= ns(after));
  // The ctime moved too (any attribute change sets it).
  CHECK(ns(before) <= ns(st.st_ctim));

  // Pre-epoch and far-future times round-trip.
  const timespec odd[2] = {{-1, 5}, {4'102'444'800, 999'999'999}};  // 1969, 2100
  SYS(::utimensat(AT_FDCWD, f.c_str(), odd, 0));
  st = stat_of(f);
  CHECK(ts(st.st_atim) == "-1.5");
  CHECK(ts(st.st_mtim) == "4102444800.999999999");

  // NULL times: both now. futimens on an fd as well.
  SYS(::utimensat(AT_FDCWD, f.c_str(), nullptr, 0));
  st = stat_of(f);
  CHECK(ns(before) <= ns(st.st_atim));
  CHECK(ns(before) <= ns(st.st_mtim));
  Fd fd = OPEN(f.c_str(), O_RDONLY);
  SYS(::futimens(fd, set));
  CHECK(ts(fstat_of(fd).st_mtim) == "1500000000.987654321");

  // AT_SYMLINK_NOFOLLOW sets the link's own times.
  SYS(::symlink("f", m.path("l").c_str()));
  const timespec link_times[2] = {{2'000, 2}, {3'000, 3}};
  SYS(::utimensat(AT_FDCWD, m.path("l").c_str(), link_times, AT_SYMLINK_NOFOLLOW));
  CHECK(ts(lstat_of(m.path("l")).st_mtim) == "3000.3");
  CHECK(ts(stat_of(f).st_mtim) == "1500000000.987654321");
}

TEST_CASE("writes and truncation update mtime and ctime", "[files][attr]") {
  MountedFs m;
  const std::string f = m.path("f");
  write_file(f, "x");
  const timespec old[2] = {{1'000, 0}, {1'000, 0}};
  SYS(::utimensat(AT_FDCWD, f.c_str(), old, 0));
  const timespec before = realtime_coarse();
  {
    Fd fd = OPEN(f.c_str(), O_WRONLY);
    pwrite_all(fd, "yy", 0);
  }
  struct stat st = stat_of(f);
  CHECK(ns(before) <= ns(st.st_mtim));
  CHECK(ns(before) <= ns(st.st_ctim));

  SYS(::utimensat(AT_FDCWD, f.c_str(), old, 0));
  SYS(::truncate(f.c_str(), 1));
  st = stat_of(f);
  CHECK(ns(before) <= ns(st.st_mtim));
  CHECK(ns(before) <= ns(st.st_ctim));
}

TEST_CASE("an open file stays readable and writable after unlink", "[files]") {
  MountedFs m;
  const std::string f = m.path("gone");
  Fd fd = OPEN(f.c_str(), O_CREAT | O_RDWR, 0644);
  pwrite_all(fd, "before unlink;", 0);
  Fd other = OPEN(f.c_str(), O_RDONLY);
  SYS(::unlink(f.c_str()));

  CHECK_FALSE(exists(f));
  CHECK(list_dir(m.dir()).count("gone") == 0);
  CHECK(fstat_of(fd).st_nlink == 0);
  pwrite_all(fd, " after unlink", 14);
  CHECK(pread_all(fd, 100, 0) == "before unlink; after unlink");
  CHECK(pread_all(other, 100, 0) == "before unlink; after unlink");
  SYS(::ftruncate(fd, 6));
  CHECK(fstat_of(fd).st_size == 6);
  CHECK(pread_all(other, 100, 0) == "before");
  SYS(::fchmod(fd, 0600));
  CHECK(fstat_of(other).st_mode == (S_IFREG | 0600));

  // The name is free again and a new file there is a different one.
  write_file(f, "new");
  CHECK(stat_of(f).st_ino != fstat_of(fd).st_ino);
  CHECK(pread_all(fd, 100, 0) == "before");
  CHECK(read_file(f) == "new");
}

TEST_CASE("copy_file_range copies between files and within one", "[files]") {
  MountedFs m;
  const std::string src_data = pattern(7, 0, (1 << 20) + 333);
  write_file(m.path("src"), src_data);
  Fd in = OPEN(m.path("src").c_str(), O_RDONLY);
  Fd out = OPEN(m.path("dst").c_str(), O_CREAT | O_RDWR, 0644);

  // The whole file, looping on short copies as callers must.
  loff_t off_in = 0, off_out = 0;
  size_t left = src_data.size();
  while (left > 0) {
    const ssize_t n = SYS(::copy_file_range(in, &off_in, out, &off_out, left, 0));
    REQUIRE(n > 0);
    left -= static_cast<size_t>(n);
  }
  CHECK(off_in == static_cast<loff_t>(src_data.size()));
  CHECK(fstat_of(out).st_size == static_cast<off_t>(src_data.size()));
  CHECK(pread_all(out, src_data.size() + 10, 0) == src_data);

  // A range into the middle of an existing file, unaligned.
  off_in = 5000;
  off_out = 100'001;
  CHECK(SYS(::copy_file_range(in, &off_in, out, &off_out, 777, 0)) == 777);
  std::string expect = src_data;
  expect.replace(100'001, 777, src_data.substr(5000, 777));
  CHECK(pread_all(out, expect.size() + 10, 0) == expect);

  // Beyond the source's end: nothing to copy.
  off_in = static_cast<loff_t>(src_data.size()) + 10;
  off_out = 0;
  CHECK(SYS(::copy_file_range(in, &off_in, out, &off_out, 100, 0)) == 0);

  // Past the destination's end: the gap reads as zeros.
  off_in = 0;
  off_out = static_cast<loff_t>(expect.size()) + 4096;
  CHECK(SYS(::copy_file_range(in, &off_in, out, &off_out, 10, 0)) == 10);
  CHECK(pread_all(out, 4096 + 10, static_cast<off_t>(expect.size())) ==
        std::string(4096, '\0') + src_data.substr(0, 10));

  // Non-overlapping ranges of the same file are fine; the VFS rejects overlapping ones.
  Fd self = OPEN(m.path("dst").c_str(), O_RDWR);
  off_in = 0;
  off_out = 1 << 21;
  CHECK(SYS(::copy_file_range(self, &off_in, self, &off_out, 4096, 0)) == 4096);
  CHECK(pread_all(self, 4096, 1 << 21) == src_data.substr(0, 4096));
  off_in = 0;
  off_out = 100;
  CHECK_ERRNO(EINVAL, ::copy_file_range(self, &off_in, self, &off_out, 4096, 0));
  // A read-only destination fd.
  off_in = off_out = 0;
  CHECK_ERRNO(EBADF, ::copy_file_range(out, &off_in, in, &off_out, 10, 0));
}

TEST_CASE("a 64 MiB file written in 1 MiB pieces reads back intact", "[files]") {
  MountedFs m;
  constexpr size_t mib = 1 << 20;
  Fd fd = OPEN(m.path("big").c_str(), O_CREAT | O_RDWR, 0644);
  for (size_t i = 0; i < 64; ++i)
    pwrite_all(fd, pattern(21, i * mib, mib), static_cast<off_t>(i * mib));
  REQUIRE(fd.close() == 0);
  const struct stat st = stat_of(m.path("big"));
  CHECK(st.st_size == static_cast<off_t>(64 * mib));
  CHECK(st.st_blocks * 512 >= static_cast<blkcnt_t>(64 * mib));
  // Read back with an odd buffer size so requests straddle pages and max_read boundaries.
  Fd in = OPEN(m.path("big").c_str(), O_RDONLY);
  std::string buf(300'007, '\0');
  size_t off = 0;
  int bad_chunks = 0;
  for (;;) {
    const ssize_t n = SYS(::read(in, buf.data(), buf.size()));
    if (n == 0) break;
    if (buf.compare(0, static_cast<size_t>(n), pattern(21, off, static_cast<size_t>(n))) != 0) {
      ++bad_chunks;
    }
    off += static_cast<size_t>(n);
  }
  CHECK(off == 64 * mib);
  CHECK(bad_chunks == 0);
}
