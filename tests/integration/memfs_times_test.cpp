// Timestamps that namespace operations must move: the parent directories' mtime/ctime on every
// entry change, and the inode's own ctime when its link count or name changes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <vector>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

const timespec long_ago[2] = {{1'000'000, 0}, {1'000'000, 0}};

// Sets atime and mtime of `path` (not following symlinks) far into the past. ctime cannot be set,
// so tests compare it with the time taken before the operation instead.
void age(const std::string& path) {
  SYS(::utimensat(AT_FDCWD, path.c_str(), long_ago, AT_SYMLINK_NOFOLLOW));
}

int64_t ns(const timespec& t) {
  return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

int64_t now_coarse() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return ns(t);
}

// The mtime moved from long ago to at least `since`.
bool mtime_moved(const std::string& path, int64_t since) {
  return ns(lstat_of(path).st_mtim) >= since;
}
bool ctime_moved(const std::string& path, int64_t since) {
  return ns(lstat_of(path).st_ctim) >= since;
}

}  // namespace

TEST_CASE("creating and removing entries updates the parent directory's mtime and ctime",
          "[times]") {
  MountedFs m;
  const std::string d = m.path("d");
  SYS(::mkdir(d.c_str(), 0755));
  struct Op {
    const char* what;
    std::function<void()> run;
  };
  const std::vector<Op> ops = {
      {"creat", [&] { write_file(d + "/f", ""); }},
      {"mkdir", [&] { SYS(::mkdir((d + "/sub").c_str(), 0755)); }},
      {"symlink", [&] { SYS(::symlink("x", (d + "/l").c_str())); }},
      {"mknod", [&] { SYS(::mknod((d + "/p").c_str(), S_IFIFO | 0644, 0)); }},
      {"link", [&] { SYS(::link((d + "/f").c_str(), (d + "/h").c_str())); }},
      {"rename within", [&] { SYS(::rename((d + "/h").c_str(), (d + "/h2").c_str())); }},
      {"unlink", [&] { SYS(::unlink((d + "/h2").c_str())); }},
      {"rmdir", [&] { SYS(::rmdir((d + "/sub").c_str())); }},
  };
  for (const Op& op : ops) {
    INFO(op.what);
    age(d);
    const int64_t before = now_coarse();
    op.run();
    CHECK(mtime_moved(d, before));
    CHECK(ctime_moved(d, before));
  }
}

TEST_CASE(
    "a cross-directory rename updates both parents - link count changes update the inode's "
    "ctime",
    "[times]") {
  MountedFs m;
  SYS(::mkdir(m.path("a").c_str(), 0755));
  SYS(::mkdir(m.path("b").c_str(), 0755));
  write_file(m.path("a/f"), "x");
  age(m.path("a"));
  age(m.path("b"));
  int64_t before = now_coarse();
  SYS(::rename(m.path("a/f").c_str(), m.path("b/f").c_str()));
  CHECK(mtime_moved(m.path("a"), before));
  CHECK(mtime_moved(m.path("b"), before));
  CHECK(ctime_moved(m.path("a"), before));
  CHECK(ctime_moved(m.path("b"), before));

  // link() and unlink() change the inode's link count, so its ctime; its mtime stays.
  age(m.path("b/f"));
  before = now_coarse();
  SYS(::link(m.path("b/f").c_str(), m.path("b/g").c_str()));
  CHECK(ctime_moved(m.path("b/f"), before));
  CHECK(ns(lstat_of(m.path("b/f")).st_mtim) == ns(long_ago[1]));
  before = now_coarse();
  SYS(::unlink(m.path("b/g").c_str()));
  CHECK(ctime_moved(m.path("b/f"), before));
  CHECK(ns(lstat_of(m.path("b/f")).st_mtim) == ns(long_ago[1]));

  // Moving a directory to another parent changes its ".." entry: its ctime moves.
  SYS(::mkdir(m.path("a/sub").c_str(), 0755));
  age(m.path("a/sub"));
  before = now_coarse();
  SYS(::rename(m.path("a/sub").c_str(), m.path("b/sub").c_str()));
  CHECK(ctime_moved(m.path("b/sub"), before));
  CHECK(stat_of(m.path("a")).st_nlink == 2);
  CHECK(stat_of(m.path("b")).st_nlink == 3);
}

TEST_CASE("a setgid directory passes its group on / and setgid to new subdirectories",
          "[times][sgid]") {
  // The group of a new entry is the server's to pick (FUSE passes the caller's gid): in a setgid
  // directory it must be the directory's group, and new subdirectories inherit the bit.
  MountedFs m;
  const std::string d = m.path("sgid");
  SYS(::mkdir(d.c_str(), 0755));
  SYS(::chown(d.c_str(), 0, 4321));
  SYS(::chmod(d.c_str(), 02775));
  write_file(d + "/file", "");
  SYS(::mkdir((d + "/sub").c_str(), 0755));
  SYS(::mknod((d + "/fifo").c_str(), S_IFIFO | 0644, 0));
  SYS(::symlink("x", (d + "/link").c_str()));
  CHECK(lstat_of(d + "/file").st_gid == 4321u);
  CHECK(lstat_of(d + "/fifo").st_gid == 4321u);
  CHECK(lstat_of(d + "/link").st_gid == 4321u);
  const struct stat sub = lstat_of(d + "/sub");
  CHECK(sub.st_gid == 4321u);
  CHECK(sub.st_mode == (S_IFDIR | 02755));
  // A file does not get the setgid bit; an ordinary directory passes nothing on.
  CHECK((lstat_of(d + "/file").st_mode & S_ISGID) == 0);
  SYS(::mkdir(m.path("plain").c_str(), 0755));
  SYS(::chown(m.path("plain").c_str(), 0, 4321));
  write_file(m.path("plain/file"), "");
  CHECK(lstat_of(m.path("plain/file")).st_gid == ::getgid());
}
