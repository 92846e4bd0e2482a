// Random namespace and data operations from several processes at once, near the capacity limit.
// Afterwards the server must still be serving, the tree must be self-consistent (every listed
// name stats with the type readdir gave, link counts match the names found, files read back as
// long as their size), and removing everything must give back every byte and inode.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

constexpr int procs = 4;
constexpr int ops_each = 6000;
constexpr int dirs = 3;
constexpr int names = 12;

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

// Errors a correct filesystem gives for some of these random operations.
bool expected_errno(int e) {
  switch (e) {
    case ENOENT:
    case EEXIST:
    case ENOTEMPTY:
    case ENOSPC:
    case EISDIR:
    case ENOTDIR:
    case EINVAL:
    case EPERM:
    case ELOOP:
    case ENODATA:
      return true;
    default:
      return false;
  }
}

// One random operation; returns 0 or the errno.
int random_op(const std::string& root, Rng& r, std::vector<char>& buf) {
  // Mostly files and symlinks; sometimes a directory ("sub"), so renames also move, exchange
  // and nest directories.
  auto name = [&] {
    std::string p = root + "/d" + std::to_string(r.below(dirs));
    if (r.below(10) == 0) return p + "/sub";
    if (r.below(4) == 0) p += "/sub";
    return p + "/n" + std::to_string(r.below(names));
  };
  const std::string a = name();
  const std::string b = name();
  errno = 0;
  switch (r.below(14)) {
    case 0:
    case 1: {  // create or open, write a random range
      const int fd = ::open(a.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW, 0644);
      if (fd < 0) return errno;
      const size_t len = static_cast<size_t>(r.below(200'000)) + 1;
      const off_t off = r.below(1 << 20);
      const ssize_t n = ::pwrite(fd, buf.data(), std::min(len, buf.size()), off);
      const int e = n < 0 ? errno : 0;
      ::close(fd);
      return e;
    }
    case 2: {  // read everything
      const int fd = ::open(a.c_str(), O_RDONLY | O_NOFOLLOW);
      if (fd < 0) return errno;
      ssize_t n;
      while ((n = ::read(fd, buf.data(), buf.size())) > 0) {
      }
      const int e = n < 0 ? errno : 0;
      ::close(fd);
      return e;
    }
    case 3:
      return ::truncate(a.c_str(), r.below(1 << 20)) == 0 ? 0 : errno;
    case 4:
      return ::rename(a.c_str(), b.c_str()) == 0 ? 0 : errno;
    case 5: {
      const unsigned flags = r.below(2) ? RENAME_EXCHANGE : RENAME_NOREPLACE;
      return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags) == 0 ? 0 : errno;
    }
    case 6:
      return ::unlink(a.c_str()) == 0 ? 0 : errno;
    case 7:
      return ::link(a.c_str(), b.c_str()) == 0 ? 0 : errno;
    case 8: {  // a subdirectory, or remove it
      const std::string sub = root + "/d" + std::to_string(r.below(dirs)) + "/sub";
      if (r.below(2)) return ::mkdir(sub.c_str(), 0755) == 0 ? 0 : errno;
      return ::rmdir(sub.c_str()) == 0 ? 0 : errno;
    }
    case 9:
      return ::symlink("n0", a.c_str()) == 0 ? 0 : errno;
    case 10: {
      DIR* d = ::opendir((root + "/d" + std::to_string(r.below(dirs))).c_str());
      if (!d) return errno;
      while (::readdir(d) != nullptr) {
      }
      ::closedir(d);
      return 0;
    }
    case 11:
      if (r.below(2)) return ::lsetxattr(a.c_str(), "user.k", buf.data(), 3000, 0) == 0 ? 0 : errno;
      return ::lremovexattr(a.c_str(), "user.k") == 0 ? 0 : errno;
    case 12: {
      const int fd = ::open(a.c_str(), O_WRONLY | O_NOFOLLOW);
      if (fd < 0) return errno;
      const int mode = r.below(2) ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : 0;
      const int e = ::fallocate(fd, mode, r.below(1 << 20), r.below(1 << 18) + 1) == 0 ? 0 : errno;
      ::close(fd);
      return e;
    }
    default: {
      struct stat st {};
      return ::lstat(a.c_str(), &st) == 0 ? 0 : errno;
    }
  }
}

struct Walk {
  std::map<ino_t, nlink_t> nlink;  // as reported by lstat
  std::map<ino_t, int> names;      // names found in the walk
  int type_mismatch = 0;
  int size_mismatch = 0;
  int dir_nlink_mismatch = 0;
  int stat_failed = 0;
};

void walk(const std::string& dir, Walk& w) {
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  int subdirs = 0;
  std::vector<std::pair<std::string, unsigned>> entries;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") entries.emplace_back(n, e->d_type);
  }
  ::closedir(d);
  for (const auto& [n, dtype] : entries) {
    const std::string p = dir + "/" + n;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      ++w.stat_failed;
      continue;
    }
    if (IFTODT(st.st_mode) != dtype) ++w.type_mismatch;
    if (S_ISDIR(st.st_mode)) {
      ++subdirs;
      walk(p, w);
      continue;
    }
    w.nlink[st.st_ino] = st.st_nlink;
    w.names[st.st_ino]++;
    if (S_ISREG(st.st_mode)) {
      const int fd = ::open(p.c_str(), O_RDONLY);
      REQUIRE(fd >= 0);
      off_t total = 0;
      char buf[65536];
      ssize_t n_read;
      while ((n_read = ::read(fd, buf, sizeof buf)) > 0)
        total += n_read;
      ::close(fd);
      if (n_read < 0 || total != st.st_size) ++w.size_mismatch;
    }
  }
  if (stat_of(dir).st_nlink != static_cast<nlink_t>(2 + subdirs)) ++w.dir_nlink_mismatch;
}

void remove_tree(const std::string& dir) {
  for (const std::string& n : list_dir(dir)) {
    const std::string p = dir + "/" + n;
    if (S_ISDIR(lstat_of(p).st_mode)) {
      remove_tree(p);
      SYS(::rmdir(p.c_str()));
    } else {
      SYS(::unlink(p.c_str()));
    }
  }
}

}  // namespace

TEST_CASE("random operations from several processes leave a consistent tree and a live server",
          "[stress]") {
  MountedFs m({"--capacity", "8MiB", "--max-inodes", "500", "--threads", "4"});
  for (int i = 0; i < dirs; ++i)
    SYS(::mkdir(m.path("d" + std::to_string(i)).c_str(), 0755));

  std::vector<pid_t> pids;
  for (int id = 0; id < procs; ++id) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      Rng r{0x9E3779B97F4A7C15ull * static_cast<uint64_t>(id + 1)};
      std::vector<char> buf(256 * 1024, static_cast<char>('a' + id));
      int unexpected = 0;
      for (int i = 0; i < ops_each; ++i) {
        const int e = random_op(m.dir(), r, buf);
        if (e != 0 && !expected_errno(e)) {
          if (unexpected < 5) std::fprintf(stderr, "op %d: unexpected %s\n", i, strerrorname_np(e));
          ++unexpected;
        }
      }
      ::_exit(unexpected > 100 ? 100 : unexpected);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    SYS(::waitpid(pid, &status, 0));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // the number of unexpected errnos
  }
  if (!reference_tmpfs()) REQUIRE(::kill(m.server_pid(), 0) == 0);

  Walk w;
  walk(m.dir(), w);
  CHECK(w.stat_failed == 0);
  CHECK(w.type_mismatch == 0);
  CHECK(w.size_mismatch == 0);
  CHECK(w.dir_nlink_mismatch == 0);
  int nlink_mismatch = 0;
  for (const auto& [ino, count] : w.names) {
    if (w.nlink.at(ino) != static_cast<nlink_t>(count)) ++nlink_mismatch;
  }
  CHECK(nlink_mismatch == 0);
  INFO(w.names.size() << " files and symlinks after the run");

  // Everything removed: every page and inode comes back (once the kernel's FORGETs arrive).
  remove_tree(m.dir());
  struct statvfs s {};
  for (int i = 0; i < 2000; ++i) {
    SYS(::statvfs(m.dir().c_str(), &s));
    if (s.f_bfree == s.f_blocks && s.f_ffree + 1 == s.f_files) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(s.f_bfree == s.f_blocks);
  CHECK(s.f_ffree + 1 == s.f_files);
}
