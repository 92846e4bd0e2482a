// Space through the kernel: statfs against --capacity and --max-inodes, ENOSPC at both limits,
// sparse files, fallocate and hole punching, SEEK_DATA/SEEK_HOLE.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;

struct statvfs statvfs_of(const std::string& path) {
  struct statvfs s {};
  SYS(::statvfs(path.c_str(), &s));
  return s;
}

uint64_t free_bytes(const std::string& path) {
  const struct statvfs s = statvfs_of(path);
  return static_cast<uint64_t>(s.f_bfree) * s.f_frsize;
}

uint64_t allocated(const struct stat& st) {
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

// Space given back by unlink or close is returned once the kernel has sent RELEASE and FORGET,
// which it does asynchronously. Waits (bounded, generously) until free space reaches `want`.
uint64_t wait_free_at_least(const std::string& path, uint64_t want) {
  uint64_t f = free_bytes(path);
  for (int i = 0; i < 2000 && f < want; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    f = free_bytes(path);
  }
  return f;
}

}  // namespace

TEST_CASE("statfs reports --capacity and --max-inodes and follows usage", "[space]") {
  MountedFs m({"--capacity", "64MiB", "--max-inodes", "1000"});
  struct statvfs s = statvfs_of(m.dir());
  CHECK(static_cast<uint64_t>(s.f_blocks) * s.f_frsize == 64 * MiB);
  CHECK(s.f_bfree == s.f_blocks);
  CHECK(s.f_bavail == s.f_bfree);
  CHECK(s.f_files == 1000);
  CHECK(s.f_ffree == 999);  // the root directory is one inode
  CHECK(s.f_namemax == 255);

  for (int i = 0; i < 10; ++i)
    write_file(m.path("f" + std::to_string(i)), "");
  SYS(::mkdir(m.path("d").c_str(), 0755));
  s = statvfs_of(m.dir());
  CHECK(s.f_ffree == 999 - 11);
  CHECK(s.f_bfree == s.f_blocks);  // empty files and directories take no capacity

  write_file(m.path("f0"), std::string(MiB, 'x'));
  s = statvfs_of(m.dir());
  CHECK(static_cast<uint64_t>(s.f_blocks - s.f_bfree) * s.f_frsize == MiB);

  SYS(::unlink(m.path("f0").c_str()));
  CHECK(wait_free_at_least(m.dir(), 64 * MiB) == 64 * MiB);
  CHECK(statvfs_of(m.dir()).f_ffree == 999 - 10);
}

TEST_CASE("truncating and overwriting charge exactly the pages a file holds", "[space]") {
  MountedFs m({"--capacity", "16MiB"});
  const uint64_t total = free_bytes(m.dir());
  Fd fd = OPEN(m.path("f").c_str(), O_CREAT | O_RDWR, 0644);
  pwrite_all(fd, std::string(MiB, 'x'), 0);
  CHECK(total - free_bytes(m.dir()) == MiB);
  pwrite_all(fd, std::string(MiB, 'y'), 0);  // overwriting allocates nothing new
  CHECK(total - free_bytes(m.dir()) == MiB);
  SYS(::ftruncate(fd, 4097));  // two pages remain
  CHECK(total - free_bytes(m.dir()) == 8 * KiB);
  CHECK(allocated(fstat_of(fd)) == 8 * KiB);
  SYS(::ftruncate(fd, 10 * MiB));  // growing adds a hole, not pages
  CHECK(total - free_bytes(m.dir()) == 8 * KiB);
  SYS(::ftruncate(fd, 0));
  CHECK(free_bytes(m.dir()) == total);
  CHECK(allocated(fstat_of(fd)) == 0);
}

TEST_CASE("a 1-byte write at 1 GiB costs one page of st_blocks and of capacity", "[space]") {
  MountedFs m({"--capacity", "64MiB"});
  const uint64_t before = free_bytes(m.dir());
  Fd fd = OPEN(m.path("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  CHECK(SYS(::pwrite(fd, "!", 1, static_cast<off_t>(GiB))) == 1);
  const struct stat st = fstat_of(fd);
  CHECK(static_cast<uint64_t>(st.st_size) == GiB + 1);
  INFO("st_blocks " << st.st_blocks);
  CHECK(allocated(st) >= 512);
  CHECK(allocated(st) <= 8 * KiB);
  const uint64_t used = before - free_bytes(m.dir());
  CHECK(used >= 1);
  CHECK(used <= 8 * KiB);
  CHECK(pread_all(fd, 1, static_cast<off_t>(GiB)) == "!");
  CHECK(pread_all(fd, 8192, static_cast<off_t>(GiB - 8191)) == std::string(8191, '\0') + "!");
  CHECK(pread_all(fd, 4096, 0) == std::string(4096, '\0'));
}

TEST_CASE(
    "writes fail with ENOSPC at --capacity and the file holds exactly what was "
    "acknowledged",
    "[space]") {
  // Write-through caching (the default): every write(2) reaches the server before it returns,
  // so the server's ENOSPC is the write's result.
  const std::string cache = GENERATE(as<std::string>{}, "always", "never");
  INFO("--cache " << cache);
  MountedFs m({"--capacity", "1MiB", "--cache", cache});
  const std::string f = m.path("fill");
  Fd fd = OPEN(f.c_str(), O_CREAT | O_WRONLY, 0644);

  constexpr size_t chunk = 64 * KiB;
  uint64_t acked = 0;
  int err = 0;
  for (int i = 0; i < 64 && err == 0; ++i) {
    const std::string data = pattern(3, acked, chunk);
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      err = errno;
    } else {
      acked += static_cast<uint64_t>(n);
    }
  }
  CHECK(errno_name(err) == "ENOSPC");
  INFO("acknowledged " << acked << " bytes");
  CHECK(acked <= MiB);
  CHECK(acked >= MiB - chunk);  // nearly all of the capacity is usable for data
  CHECK(static_cast<uint64_t>(fstat_of(fd).st_size) == acked);
  CHECK(free_bytes(m.dir()) == MiB - acked);

  // One big write(2) that does not fit on a fresh file: whatever it reports is what the file
  // holds, and it never reports more than fits.
  Fd fd2 = OPEN(m.path("second").c_str(), O_CREAT | O_WRONLY, 0644);
  const std::string big = pattern(4, 0, 512 * KiB);
  CHECK_ERRNO(ENOSPC, ::write(fd2, big.data(), big.size()));
  CHECK(fstat_of(fd2).st_size == 0);
  CHECK_ERRNO(ENOSPC, ::fallocate(fd2, 0, 0, 64 * KiB));
  // MemFs charges xattrs to the capacity (tmpfs does not).
  if (!reference_tmpfs()) CHECK_ERRNO(ENOSPC, ::setxattr(f.c_str(), "user.x", "v", 1, 0));
  // Overwriting already allocated bytes needs no new space.
  CHECK(SYS(::pwrite(fd, "over", 4, 0)) == 4);
  REQUIRE(fd.close() == 0);
  fd2.reset();

  // After a fresh open the file holds exactly the acknowledged bytes, all of them intact.
  std::string expect = pattern(3, 0, acked);
  expect.replace(0, 4, "over");
  CHECK(stat_of(f).st_size == static_cast<off_t>(acked));
  CHECK(read_file(f) == expect);
  CHECK(stat_of(m.path("second")).st_size == 0);

  // Names need no capacity; removing the big file gives the space back for new writes.
  SYS(::mkdir(m.path("still-possible").c_str(), 0755));
  SYS(::unlink(f.c_str()));
  CHECK(wait_free_at_least(m.dir(), MiB) == MiB);
  write_file(m.path("second"), pattern(5, 0, 512 * KiB));
  CHECK(read_file(m.path("second")) == pattern(5, 0, 512 * KiB));

  // One write(2) larger than what is left (512 KiB free, 768 KiB asked; the kernel may split it
  // into several requests): it reports at most what fits, and the file holds exactly that.
  Fd fd3 = OPEN(m.path("third").c_str(), O_CREAT | O_WRONLY, 0644);
  const std::string over = pattern(8, 0, 768 * KiB);
  const ssize_t n = ::write(fd3, over.data(), over.size());
  INFO("write of 768 KiB with 512 KiB free returned " << n << " (" << errno_name(n < 0 ? errno : 0)
                                                      << ")");
  CHECK(n <= static_cast<ssize_t>(512 * KiB));
  if (n < 0) CHECK(errno_name(errno) == "ENOSPC");
  const uint64_t kept = n > 0 ? static_cast<uint64_t>(n) : 0;
  CHECK(static_cast<uint64_t>(fstat_of(fd3).st_size) == kept);
  REQUIRE(fd3.close() == 0);
  CHECK(read_file(m.path("third")) == over.substr(0, kept));
}

TEST_CASE("a write(2) that only partly fits writes what fits and returns the short count",
          "[space]") {
  // POSIX: "only as many bytes as there is room for shall be written". tmpfs and ext4 do; the
  // rest of the write is refused with ENOSPC only when not one byte fits.
  const std::string cache = GENERATE(as<std::string>{}, "always", "never");
  INFO("--cache " << cache);
  MountedFs m({"--capacity", "1MiB", "--cache", cache});
  Fd fd = OPEN(m.path("f").c_str(), O_CREAT | O_WRONLY, 0644);
  const std::string data = pattern(15, 0, MiB + 32 * KiB);
  pwrite_all(fd, std::string_view(data).substr(0, 960 * KiB), 0);
  SYS(::lseek(fd, 960 * KiB, SEEK_SET));
  // 96 KiB asked, 64 KiB free.
  const ssize_t n = ::write(fd, data.data() + 960 * KiB, 96 * KiB);
  INFO("write of 96 KiB with 64 KiB free returned " << n << " (" << errno_name(n < 0 ? errno : 0)
                                                    << ")");
  CHECK(n == static_cast<ssize_t>(64 * KiB));
  // Then the filesystem is full.
  if (n == static_cast<ssize_t>(64 * KiB))
    CHECK_ERRNO(ENOSPC, ::write(fd, data.data() + MiB, 4096));
  const uint64_t kept = 960 * KiB + (n > 0 ? static_cast<uint64_t>(n) : 0);
  CHECK(static_cast<uint64_t>(fstat_of(fd).st_size) == kept);
  REQUIRE(fd.close() == 0);
  CHECK(read_file(m.path("f")) == data.substr(0, kept));
}

TEST_CASE("with --writeback / ENOSPC surfaces at write or at fsync / never silently", "[space]") {
  MountedFs m({"--capacity", "1MiB", "--writeback"});
  Fd fd = OPEN(m.path("fill").c_str(), O_CREAT | O_WRONLY, 0644);
  const std::string data = pattern(6, 0, 2 * MiB);
  const ssize_t n = ::write(fd, data.data(), data.size());
  const int write_err = n < 0 ? errno : 0;
  const int fsync_err = errno_of([&] { return ::fsync(fd); });
  INFO("write returned " << n << " (" << errno_name(write_err) << "), fsync "
                         << errno_name(fsync_err));
  if (write_err != ENOSPC && fsync_err != ENOSPC) {
    // No error anywhere: then everything the write acknowledged must really be there.
    REQUIRE(write_err == 0);
    REQUIRE(fsync_err == 0);
    CHECK(static_cast<uint64_t>(n) <= MiB);
    fd.reset();
    CHECK(read_file(m.path("fill")) == data.substr(0, static_cast<size_t>(n)));
  }
  CHECK(free_bytes(m.dir()) <= MiB);
}

TEST_CASE("creates fail with ENOSPC at --max-inodes and leave nothing half-made", "[space]") {
  MountedFs m({"--max-inodes", "50"});
  int created = 0;
  int err = 0;
  for (int i = 0; i < 100; ++i) {
    const std::string p = m.path("f" + std::to_string(i));
    const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) {
      err = errno;
      break;
    }
    ::close(fd);
    ++created;
  }
  CHECK(errno_name(err) == "ENOSPC");
  CHECK(created == 49);  // the root directory is the 50th inode
  const std::string next = m.path("f" + std::to_string(created));
  CHECK_FALSE(exists(next));
  CHECK(list_dir(m.dir()).size() == static_cast<size_t>(created));
  CHECK(statvfs_of(m.dir()).f_ffree == 0);

  // Every kind of new inode fails the same way, and leaves no name behind.
  CHECK_ERRNO(ENOSPC, ::mkdir(m.path("d").c_str(), 0755));
  CHECK_ERRNO(ENOSPC, ::symlink("t", m.path("l").c_str()));
  CHECK_ERRNO(ENOSPC, ::mknod(m.path("n").c_str(), S_IFIFO | 0644, 0));
  CHECK_FALSE(exists(m.path("d")));
  CHECK_FALSE(exists(m.path("l")));
  CHECK_FALSE(exists(m.path("n")));
  // A rename makes no inode and still works.
  SYS(::rename(m.path("f1").c_str(), m.path("f1-renamed").c_str()));

  // Freeing one inode makes room for exactly one.
  SYS(::unlink(m.path("f2").c_str()));
  bool made = false;
  for (int i = 0; i < 2000 && !made; ++i) {  // the inode is freed when FORGET arrives
    if (::mkdir(m.path("d").c_str(), 0755) == 0) {
      made = true;
    } else {
      REQUIRE(errno == ENOSPC);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  CHECK(made);
  CHECK_ERRNO(ENOSPC, ::mkdir(m.path("d2").c_str(), 0755));
}

TEST_CASE("fallocate allocates / KEEP_SIZE keeps the size / PUNCH_HOLE frees blocks", "[space]") {
  MountedFs m({"--capacity", "64MiB"});
  Fd fd = OPEN(m.path("f").c_str(), O_CREAT | O_RDWR, 0644);
  const uint64_t free0 = free_bytes(m.dir());

  SYS(::fallocate(fd, 0, 0, static_cast<off_t>(MiB)));
  struct stat st = fstat_of(fd);
  CHECK(static_cast<uint64_t>(st.st_size) == MiB);
  CHECK(allocated(st) >= MiB);
  CHECK(free0 - free_bytes(m.dir()) == MiB);
  CHECK(pread_all(fd, MiB, 0) == std::string(MiB, '\0'));

  // Beyond EOF with KEEP_SIZE: space, but no size change.
  SYS(::fallocate(fd, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(MiB), static_cast<off_t>(MiB)));
  st = fstat_of(fd);
  CHECK(static_cast<uint64_t>(st.st_size) == MiB);
  CHECK(allocated(st) >= 2 * MiB);
  CHECK(free0 - free_bytes(m.dir()) == 2 * MiB);

  // Fill with data, punch 256 KiB out of the middle: zeros there, blocks and capacity back.
  const std::string data = pattern(9, 0, MiB);
  pwrite_all(fd, data, 0);
  const uint64_t blocks_before = allocated(fstat_of(fd));
  SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(256 * KiB),
                  static_cast<off_t>(256 * KiB)));
  st = fstat_of(fd);
  CHECK(static_cast<uint64_t>(st.st_size) == MiB);
  CHECK(allocated(st) == blocks_before - 256 * KiB);
  CHECK(free0 - free_bytes(m.dir()) == 2 * MiB - 256 * KiB);
  std::string expect = data;
  expect.replace(256 * KiB, 256 * KiB, std::string(256 * KiB, '\0'));
  CHECK(pread_all(fd, MiB, 0) == expect);

  // An unaligned punch zeroes the partial pages' bytes and frees only whole pages.
  SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000));
  expect.replace(100, 5000, std::string(5000, '\0'));
  CHECK(pread_all(fd, MiB, 0) == expect);
  CHECK(allocated(fstat_of(fd)) >= blocks_before - 256 * KiB - 4 * KiB);

  // PUNCH_HOLE must come with KEEP_SIZE.
  CHECK_ERRNO(EOPNOTSUPP, ::fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));
  CHECK_ERRNO(EINVAL, ::fallocate(fd, 0, 0, 0));
  Fd ro = OPEN(m.path("f").c_str(), O_RDONLY);
  CHECK_ERRNO(EBADF, ::fallocate(ro, 0, 0, 4096));
}

TEST_CASE("SEEK_DATA and SEEK_HOLE find the data and holes of a sparse file", "[space]") {
  MountedFs m;
  Fd fd = OPEN(m.path("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  const off_t mib = static_cast<off_t>(MiB);
  pwrite_all(fd, std::string(4096, 'a'), 0);
  pwrite_all(fd, std::string(8192, 'b'), mib);
  SYS(::ftruncate(fd, 4 * mib));

  CHECK(SYS(::lseek(fd, 0, SEEK_DATA)) == 0);
  CHECK(SYS(::lseek(fd, 0, SEEK_HOLE)) == 4096);
  CHECK(SYS(::lseek(fd, 100, SEEK_HOLE)) == 4096);
  CHECK(SYS(::lseek(fd, 4096, SEEK_DATA)) == mib);
  CHECK(SYS(::lseek(fd, mib + 10, SEEK_DATA)) == mib + 10);
  CHECK(SYS(::lseek(fd, mib, SEEK_HOLE)) == mib + 8192);
  // After the last data: no more data; the hole runs to EOF.
  CHECK_ERRNO(ENXIO, ::lseek(fd, mib + 8192, SEEK_DATA));
  CHECK(SYS(::lseek(fd, mib + 8192, SEEK_HOLE)) == mib + 8192);
  CHECK(SYS(::lseek(fd, 4 * mib - 1, SEEK_HOLE)) == 4 * mib - 1);
  // At or past EOF both fail.
  CHECK_ERRNO(ENXIO, ::lseek(fd, 4 * mib, SEEK_DATA));
  CHECK_ERRNO(ENXIO, ::lseek(fd, 4 * mib, SEEK_HOLE));
  CHECK_ERRNO(ENXIO, ::lseek(fd, 5 * mib, SEEK_HOLE));

  // Punching the first page turns it into a hole.
  SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  CHECK(SYS(::lseek(fd, 0, SEEK_DATA)) == mib);
  CHECK(SYS(::lseek(fd, 0, SEEK_HOLE)) == 0);
}
