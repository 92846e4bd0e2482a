// --quota (ENOSPC for write, truncate-extend, fallocate, copy_file_range; statfs shows the cap
// and what is free) and --readonly (EROFS for every change, and nothing changes on the host).
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

constexpr uint64_t mib = 1 << 20;

struct Space {
  uint64_t total = 0;
  uint64_t free = 0;
  uint64_t avail = 0;
};

Space space_of(const std::string& dir) {
  struct statvfs v {};
  SYS(::statvfs(dir.c_str(), &v));
  return {v.f_blocks * v.f_frsize, v.f_bfree * v.f_frsize, v.f_bavail * v.f_frsize};
}

}  // namespace

TEST_CASE("quota: writes / truncate-extend / fallocate past the cap fail with ENOSPC",
          "[pt][quota]") {
  // 256 KiB already on the host count against the 4 MiB.
  PassthroughMount m({.flags = {"--quota", "4MiB"}, .seed = [](const HostTree& t) {
                        write_file(t.root("existing"), std::string(256 * 1024, 'e'));
                      }});
  const std::string f = m.path("f");
  // The files already there are counted by a walk that starts at mount and runs in the
  // background; writes and statfs wait for it, so the very first statfs is already right.
  Space s = space_of(m.dir());
  CHECK(s.total == 4 * mib);
  CHECK(s.free == 4 * mib - 256 * 1024);
  CHECK(s.avail == s.free);

  Fd fd = OPEN(f.c_str(), O_CREAT | O_RDWR, 0644);
  const std::string mib_data = pattern(3, 0, mib);
  for (int i = 0; i < 3; ++i)
    pwrite_all(fd, mib_data, static_cast<off_t>(i * mib));
  s = space_of(m.dir());
  CHECK(s.free == mib - 256 * 1024);

  // 768 KiB left: a 1 MiB write does not fit and changes nothing.
  CHECK_ERRNO(ENOSPC, ::pwrite(fd, mib_data.data(), mib, 3 * mib));
  CHECK(fstat_of(fd).st_size == static_cast<off_t>(3 * mib));
  CHECK(stat_of(m.host("f")).st_size == static_cast<off_t>(3 * mib));
  // Overwriting in place costs nothing.
  for (int i = 0; i < 20; ++i)
    pwrite_all(fd, mib_data, 0);
  CHECK(space_of(m.dir()).free == mib - 256 * 1024);

  CHECK_ERRNO(ENOSPC, ::ftruncate(fd, static_cast<off_t>(4 * mib)));
  CHECK_ERRNO(ENOSPC, ::truncate(f.c_str(), static_cast<off_t>(5 * mib)));
  CHECK(stat_of(m.host("f")).st_size == static_cast<off_t>(3 * mib));
  CHECK_ERRNO(ENOSPC, ::fallocate(fd, 0, static_cast<off_t>(3 * mib), static_cast<off_t>(mib)));
  CHECK(stat_of(m.host("f")).st_size == static_cast<off_t>(3 * mib));
  // What fits, fits exactly.
  SYS(::ftruncate(fd, static_cast<off_t>(3 * mib + 512 * 1024)));
  SYS(::fallocate(fd, 0, static_cast<off_t>(3 * mib + 512 * 1024), 256 * 1024));
  CHECK(space_of(m.dir()).free == 0);
  CHECK_ERRNO(ENOSPC, ::pwrite(fd, "x", 1, static_cast<off_t>(4 * mib)));
  // copy_file_range into a new file needs room too.
  Fd other = OPEN(m.path("g").c_str(), O_CREAT | O_RDWR, 0644);
  loff_t in = 0, out = 0;
  CHECK_ERRNO(ENOSPC, ::copy_file_range(fd, &in, other, &out, 4096, 0));
  CHECK(stat_of(m.host("g")).st_size == 0);

  // Shrinking and unlinking give the space back.
  SYS(::ftruncate(fd, static_cast<off_t>(mib)));
  CHECK(space_of(m.dir()).free == 3 * mib - 256 * 1024);
  pwrite_all(other, mib_data, 0);
  SYS(::unlink(m.path("existing").c_str()));
  CHECK(space_of(m.dir()).free == 2 * mib);
  fd.reset();
  other.reset();
  SYS(::unlink(f.c_str()));
  SYS(::unlink(m.path("g").c_str()));
  CHECK(space_of(m.dir()).free == 4 * mib);
  // Directories, names and xattrs are not charged.
  SYS(::mkdir(m.path("d").c_str(), 0755));
  write_file(m.path("d/empty"), "");
  SYS(::setxattr(m.path("d/empty").c_str(), "user.x", "1234", 4, 0));
  CHECK(space_of(m.dir()).free == 4 * mib);
}

TEST_CASE("quota: a write that does not fit in one piece is refused whole", "[pt][quota]") {
  PassthroughMount m({"--quota", "1MiB"});
  const std::string data = pattern(5, 0, 768 * 1024);
  Fd fd = OPEN(m.path("f").c_str(), O_CREAT | O_RDWR, 0644);
  pwrite_all(fd, data, 0);
  // 256 KiB free, 512 KiB asked: ENOSPC, and nothing of it lands.
  CHECK_ERRNO(ENOSPC, ::pwrite(fd, data.data(), 512 * 1024, 768 * 1024));
  CHECK(fstat_of(fd).st_size == 768 * 1024);
  CHECK(pread_all(fd, 1 << 20, 0) == data);
  // Exactly what is left works.
  pwrite_all(fd, data.substr(0, 256 * 1024), 768 * 1024);
  CHECK(space_of(m.dir()).free == 0);
}

TEST_CASE("the server raises its open file limit: 3000 files open at once through the mount",
          "[pt][limits]") {
  // Start the server with the common soft limit of 1024 (the hard limit stays), then hold far
  // more files open through it than that: each is a host fd in the server.
  rlimit saved{};
  SYS(::getrlimit(RLIMIT_NOFILE, &saved));
  constexpr rlim_t files = 3000;
  REQUIRE(saved.rlim_max >= files + 200);  // the hard limit is 1M on Debian; this holds
  rlimit low = saved;
  low.rlim_cur = 1024;
  SYS(::setrlimit(RLIMIT_NOFILE, &low));
  std::optional<PassthroughMount> m;
  try {
    m.emplace();
  } catch (...) {
    SYS(::setrlimit(RLIMIT_NOFILE, &saved));
    throw;
  }
  rlimit high = saved;
  high.rlim_cur = saved.rlim_max;
  SYS(::setrlimit(RLIMIT_NOFILE, &high));
  std::vector<Fd> open_files;
  open_files.reserve(files);
  for (rlim_t i = 0; i < files; ++i) {
    const std::string p = m->path("f" + std::to_string(i));
    const int fd = ::open(p.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) FAIL("open #" << i << " through the mount: " << std::strerror(errno));
    open_files.emplace_back(fd);
  }
  CHECK(open_files.size() == files);
  open_files.clear();
  SYS(::setrlimit(RLIMIT_NOFILE, &saved));
}

TEST_CASE("read-only: every change is EROFS and the host tree does not change", "[pt][readonly]") {
  PassthroughMount m({.flags = {"--readonly"}, .seed = [](const HostTree& t) {
                        write_file(t.root("f"), "file");
                        SYS(::mkdir(t.root("d").c_str(), 0755));
                        write_file(t.root("d/g"), "g");
                        SYS(::symlink("f", t.root("l").c_str()));
                        set_host_xattr(t.root("f"), "user.x", "x");
                      }});
  const std::string before = tree_fingerprint(m.host());
  const std::string f = m.path("f");

  CHECK(read_file(f) == "file");
  CHECK(read_file(m.path("l")) == "file");
  CHECK(list_dir(m.path("d")) == std::set<std::string>{"g"});
  char buf[16];
  CHECK(SYS(::getxattr(f.c_str(), "user.x", buf, sizeof buf)) == 1);
  CHECK(SYS(::listxattr(f.c_str(), buf, sizeof buf)) == 7);
  struct statvfs v {};
  SYS(::statvfs(m.dir().c_str(), &v));
  Fd ro = OPEN(f.c_str(), O_RDONLY);
  SYS(::fsync(ro));

  CHECK_ERRNO(EROFS, ::open(f.c_str(), O_WRONLY));
  CHECK_ERRNO(EROFS, ::open(f.c_str(), O_RDWR));
  CHECK_ERRNO(EROFS, ::open(f.c_str(), O_RDONLY | O_TRUNC));
  CHECK_ERRNO(EROFS, ::open(m.path("new").c_str(), O_CREAT | O_WRONLY, 0644));
  CHECK_ERRNO(EROFS, ::mkdir(m.path("nd").c_str(), 0755));
  CHECK_ERRNO(EROFS, ::mknod(m.path("fifo").c_str(), S_IFIFO | 0644, 0));
  CHECK_ERRNO(EROFS, ::mknod(m.path("reg").c_str(), S_IFREG | 0644, 0));
  CHECK_ERRNO(EROFS, ::symlink("t", m.path("nl").c_str()));
  CHECK_ERRNO(EROFS, ::link(f.c_str(), m.path("hard").c_str()));
  CHECK_ERRNO(EROFS, ::unlink(f.c_str()));
  CHECK_ERRNO(EROFS, ::unlink(m.path("l").c_str()));
  CHECK_ERRNO(EROFS, ::rmdir(m.path("d").c_str()));
  CHECK_ERRNO(EROFS, ::rename(f.c_str(), m.path("moved").c_str()));
  CHECK_ERRNO(EROFS,
              ::renameat2(AT_FDCWD, f.c_str(), AT_FDCWD, m.path("d").c_str(), RENAME_EXCHANGE));
  CHECK_ERRNO(EROFS, ::chmod(f.c_str(), 0777));
  CHECK_ERRNO(EROFS, ::chown(f.c_str(), 1, 1));
  CHECK_ERRNO(EROFS, ::truncate(f.c_str(), 0));
  CHECK_ERRNO(EROFS, ::utimensat(AT_FDCWD, f.c_str(), nullptr, 0));
  CHECK_ERRNO(EROFS, ::setxattr(f.c_str(), "user.y", "y", 1, 0));
  CHECK_ERRNO(EROFS, ::removexattr(f.c_str(), "user.x"));
  CHECK_ERRNO(EROFS, ::fchmod(ro, 0777));
  CHECK_ERRNO(EROFS, ::futimens(ro, nullptr));
  CHECK_ERRNO(EROFS, ::fsetxattr(ro, "user.z", "z", 1, 0));

  CHECK(tree_fingerprint(m.host()) == before);
}
