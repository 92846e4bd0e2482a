// Hooks through the kernel: `sandfsd mount --deny OP=ERRNO` refusing a system call before the
// backend sees it, and a DualFs copy-up counted in the mount's stats (the summary sandfsd logs
// when it stops).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "host_files.hpp"
#include "mount_fixture.hpp"

using sandfs::it::exists;
using sandfs::it::HostDir;
using sandfs::it::MountedFs;
using sandfs::it::MountSpec;
using sandfs::it::put;
using sandfs::it::slurp;

namespace {

// Stops the server the way a user does (SIGTERM: it unmounts and exits) and returns its log.
std::string stop_and_log(MountedFs& m) {
  const int status = m.signal_and_wait(SIGTERM);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(MountedFs::is_mounted(m.dir()));
  return m.log_tail();
}

}  // namespace

TEST_CASE("a mount with deny UNLINK=EACCES: rm fails with EACCES and the file stays",
          "[hooks][fuse]") {
  MountSpec spec;
  spec.flags = {"--deny", "UNLINK=EACCES", "--log-level", "debug"};
  MountedFs m(spec);
  INFO(m.log_tail());
  put(m.path("victim"), "still here\n");
  ::mkdir(m.path("dir").c_str(), 0755);

  errno = 0;
  CHECK(::unlink(m.path("victim").c_str()) == -1);
  CHECK(errno == EACCES);
  const std::string rm = "rm -f '" + m.path("victim") + "' 2>" + m.dir() + ".rm-err";
  const int rc = std::system(rm.c_str());
  std::string rm_err = slurp(m.dir() + ".rm-err");
  ::unlink((m.dir() + ".rm-err").c_str());
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) != 0);
  CHECK(rm_err.find("Permission denied") != std::string::npos);
  CHECK(exists(m.path("victim")));
  CHECK(slurp(m.path("victim")) == "still here\n");

  // Only UNLINK is refused: the rest of the namespace works.
  CHECK(::rename(m.path("victim").c_str(), m.path("renamed").c_str()) == 0);
  CHECK(::rmdir(m.path("dir").c_str()) == 0);
  CHECK(exists(m.path("renamed")));

  const std::string log = stop_and_log(m);
  INFO(log);
  CHECK(log.find("deny UNLINK=EACCES") != std::string::npos);  // the start-up line says so
  // Refusals are counted like any error: two UNLINKs, two errors.
  CHECK(log.find("UNLINK: 2 (2 errors") != std::string::npos);
}

TEST_CASE("deny rules take an errno number and several opcodes", "[hooks][fuse]") {
  MountSpec spec;
  spec.flags = {"--deny", "MKDIR=30", "--deny", "SETXATTR"};
  MountedFs m(spec);
  INFO(m.log_tail());
  errno = 0;
  CHECK(::mkdir(m.path("d").c_str(), 0755) == -1);
  CHECK(errno == EROFS);
  CHECK_FALSE(exists(m.path("d")));
  put(m.path("f"), "x");
  errno = 0;
  CHECK(::setxattr(m.path("f").c_str(), "user.k", "v", 1, 0) == -1);
  CHECK(errno == EPERM);
}

TEST_CASE("a bad deny rule is refused at start with a clear message", "[hooks][fuse]") {
  const std::string cmd =
      sandfs::it::sandfsd_path() + " mount --deny FORGET /nonexistent-mountpoint 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  const int status = ::pclose(p);
  INFO(out);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(out.find("--deny: FORGET cannot be refused") != std::string::npos);
}

TEST_CASE("a dual mount counts a copy-up and its bytes in its stats", "[hooks][dualfs]") {
  HostDir low("low");
  HostDir up("up");
  const std::string data(3 << 20, 'b');  // several 1 MiB chunks
  put(low / "big", data);
  put(low / "small", "lower\n");

  MountSpec spec;
  spec.backend = "dual";
  spec.flags = {"--a",          "passthrough:" + up.path(),
                "--b",          "passthrough:" + low.path(),
                "--b-readonly", "--log-level",
                "debug"};
  MountedFs m(spec);
  INFO(m.log_tail());
  // Reading copies nothing up.
  CHECK(slurp(m.path("big")) == data);
  // Writing one byte of a B file copies it up whole, once.
  {
    const int fd = ::open(m.path("big").c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    CHECK(::pwrite(fd, "X", 1, 100) == 1);
    CHECK(::pwrite(fd, "Y", 1, 200) == 1);
    ::close(fd);
  }
  CHECK(std::filesystem::file_size(up / "big") == data.size());
  CHECK(slurp(low / "big") == data);

  const std::string log = stop_and_log(m);
  INFO(log);
  const std::string size = std::to_string(data.size());
  // The info line at exit and the statistics summary (debug).
  CHECK(log.find("1 copy-ups of " + size + " B (0 failed)") != std::string::npos);
  CHECK(log.find("copy-ups 1 (0 failed, " + size + " B") != std::string::npos);
}
