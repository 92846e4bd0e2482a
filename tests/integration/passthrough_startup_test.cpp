// Start-up of `sandfsd mount --backend passthrough`: a root that cannot be served is a one-line
// error and exit status 1 (bad command lines are 2); --follow-root-symlinks decides whether a
// symlink in the --root path is followed.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

struct Outcome {
  int status = -1;  // exit status, or -1 if it had to be killed
  std::string output;
};

// Runs sandfsd with `args` and collects its stdout+stderr. A sandfsd that mounted after all is
// unmounted (and the test fails on the status).
Outcome run_sandfsd(std::vector<std::string> args, const std::string& mountpoint) {
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  args.insert(args.begin(), sandfsd_path());
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(out[1], STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  Outcome o;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[4096];
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n > 0) o.output.append(buf, static_cast<size_t>(n));
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      o.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (MountedFs::is_mounted(mountpoint) || std::chrono::steady_clock::now() > deadline) {
      ::umount2(mountpoint.c_str(), MNT_DETACH);
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
      o.status = -1;
      break;
    }
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0)
    o.output.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  return o;
}

size_t lines(const std::string& s) {
  size_t n = 0;
  for (const char c : s)
    n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("a root that cannot be served is one clear line and exit status 1", "[pt][startup]") {
  HostTree t;
  std::string mnt = "/tmp/sandfs-ptit-mnt-XXXXXX";
  REQUIRE(::mkdtemp(mnt.data()) != nullptr);
  write_file(t.root("file"), "not a directory");
  SYS(::symlink(t.root().c_str(), (t.base() + "/root-link").c_str()));
  SYS(::mkdir((t.base() + "/real").c_str(), 0755));
  SYS(::symlink("real", (t.base() + "/rel-link").c_str()));

  const auto expect_failure = [&](std::vector<std::string> flags, const std::string& says) {
    std::vector<std::string> args = {"mount", "--backend", "passthrough"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(mnt);
    const Outcome o = run_sandfsd(args, mnt);
    INFO("sandfsd " << flags[1] << " said: " << o.output);
    CHECK(o.status == 1);
    CHECK(lines(o.output) == 1);
    CHECK_THAT(o.output, Catch::Contains(says));
    CHECK_FALSE(MountedFs::is_mounted(mnt));
  };
  expect_failure({"--root", t.base() + "/missing"}, t.base() + "/missing");
  expect_failure({"--root", t.root("file")}, t.root("file"));
  // A symlink anywhere in the path is refused unless asked for.
  expect_failure({"--root", t.base() + "/root-link"}, "root-link");
  expect_failure({"--root", t.base() + "/rel-link"}, "rel-link");
  // Strict needs user xattrs on the host filesystem: procfs has none.
  expect_failure({"--root", "/proc/sys"}, "--stat-virtualization relaxed or off");

  // --stat-virtualization off with --host-permissions mirror is refused.
  const Outcome o =
      run_sandfsd({"mount", "--backend", "passthrough", "--root", t.root(), "--stat-virtualization",
                   "off", "--host-permissions", "mirror", mnt},
                  mnt);
  INFO(o.output);
  CHECK(o.status == 1);
  CHECK(lines(o.output) == 1);
  CHECK_THAT(o.output, Catch::Contains("mirror"));
  ::rmdir(mnt.c_str());
}

TEST_CASE("with --follow-root-symlinks a symlinked --root serves the directory it points to",
          "[pt][startup]") {
  std::string link;
  {
    HostTree target;
    write_file(target.root("here"), "through the link");
    link = target.base() + "/link";
    SYS(::symlink(target.root().c_str(), link.c_str()));
    MountedFs m(MountSpec{.backend = "passthrough",
                          .flags = {"--root", link, "--follow-root-symlinks"},
                          .dir_prefix = "/tmp/sandfs-ptit-mnt-"});
    CHECK(read_file(m.path("here")) == "through the link");
    write_file(m.path("new"), "n");
    CHECK(read_file(target.root("new")) == "n");
  }
}
