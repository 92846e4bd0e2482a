#include "sys_checks.hpp"

#include <dirent.h>
#include <grp.h>
#include <sys/wait.h>

namespace sandfs::it {

void pwrite_all(int fd, std::string_view data, off_t off) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        SYS(::pwrite(fd, data.data() + done, data.size() - done, off + static_cast<off_t>(done)));
    REQUIRE(n > 0);
    done += static_cast<size_t>(n);
  }
}

std::string pread_all(int fd, size_t len, off_t off) {
  std::string out(len, '\0');
  size_t done = 0;
  while (done < len) {
    const ssize_t n =
        SYS(::pread(fd, out.data() + done, len - done, off + static_cast<off_t>(done)));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

void write_file(const std::string& path, std::string_view data, mode_t mode) {
  Fd fd = OPEN(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  pwrite_all(fd, data, 0);
  REQUIRE(fd.close() == 0);
}

std::string read_file(const std::string& path) {
  Fd fd = OPEN(path.c_str(), O_RDONLY);
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = SYS(::read(fd, buf, sizeof buf));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  SYS(::stat(path.c_str(), &st));
  return st;
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  SYS(::lstat(path.c_str(), &st));
  return st;
}

struct stat fstat_of(int fd) {
  struct stat st {};
  SYS(::fstat(fd, &st));
  return st;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::set<std::string> list_dir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) FAIL("opendir " << path << ": " << errno_name(errno));
  std::set<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.insert(n);
  }
  const int e = errno;
  ::closedir(d);
  if (e != 0) FAIL("readdir " << path << ": " << errno_name(e));
  return names;
}

int as_nobody(const std::function<int()>& step) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // As setpriv --reuid=65534 --regid=65534 --clear-groups: groups first, then gid, then uid
    // (which drops every capability, since all of the uids become non-zero).
    if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody_gid, nobody_gid, nobody_gid) != 0 ||
        ::setresuid(nobody_uid, nobody_uid, nobody_uid) != 0) {
      ::_exit(255);
    }
    int r = 254;
    try {
      r = step();
    } catch (...) {
    }
    ::_exit(r & 0xff);
  }
  int status = 0;
  SYS(::waitpid(pid, &status, 0));
  if (!WIFEXITED(status)) return -1;
  const int code = WEXITSTATUS(status);
  INFO("as_nobody child exit code " << code);
  REQUIRE(code != 255);  // could not change user
  REQUIRE(code != 254);  // the step threw
  return code;
}

}  // namespace sandfs::it
