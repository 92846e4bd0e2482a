#include "mount_fixture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

#include "sys_checks.hpp"

namespace sandfs::it {
namespace {

using Clock = std::chrono::steady_clock;

// Generous: an ASan server on a loaded 2-core machine can take seconds to start or stop.
constexpr int start_timeout_ms = 30'000;
constexpr int stop_timeout_ms = 30'000;

// Undoes the octal escapes mountinfo uses for spaces and the like.
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string mount_fstype(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    if (unescape_mountinfo(point) != dir) continue;
    std::string f;
    while (fields >> f && f != "-") {
    }
    std::string fstype;
    fields >> fstype;
    found = fstype;  // the last mount at a point is the visible one
  }
  return found;
}

// "64MiB" / "1GiB" / "4096" -> bytes, for the tmpfs reference mode only.
std::string tmpfs_size(const std::string& s) {
  std::string num = s, unit;
  while (!num.empty() && std::isalpha(static_cast<unsigned char>(num.back()))) {
    unit.insert(unit.begin(), num.back());
    num.pop_back();
  }
  uint64_t v = std::stoull(num);
  if (unit == "KiB" || unit == "K") v <<= 10;
  if (unit == "MiB" || unit == "M") v <<= 20;
  if (unit == "GiB" || unit == "G") v <<= 30;
  return std::to_string(v);
}

}  // namespace

std::string& sandfsd_path() {
  static std::string path;
  return path;
}

bool reference_tmpfs() {
  const char* r = std::getenv("SANDFS_IT_REFERENCE");
  return r && std::string_view(r) == "tmpfs";
}

bool passthrough_backend() {
  const char* b = std::getenv("SANDFS_IT_BACKEND");
  return b && std::string_view(b) == "passthrough" && !reference_tmpfs();
}

bool MountedFs::is_mounted(const std::string& dir) {
  const std::string t = mount_fstype(dir);
  return t == "fuse.sandfs" || (reference_tmpfs() && t == "tmpfs");
}

namespace {

// The spec for the flags-only constructor: MemFs, or a passthrough of a fresh host directory
// when SANDFS_IT_BACKEND=passthrough (the directory is returned in `host_dir`).
MountSpec default_spec(std::vector<std::string> flags, std::string& host_dir) {
  if (!passthrough_backend()) {
    return MountSpec{.flags = std::move(flags)};
  }
  char tmpl[] = "/tmp/sandfs-ptit-host-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  host_dir = tmpl;
  ::chmod(host_dir.c_str(), 0755);
  MountSpec spec{.backend = "passthrough", .flags = {"--root", host_dir}};
  spec.flags.insert(spec.flags.end(), flags.begin(), flags.end());
  return spec;
}

}  // namespace

MountedFs::MountedFs(std::vector<std::string> flags) {
  std::string host_dir;
  MountSpec spec = default_spec(std::move(flags), host_dir);
  host_dir_ = host_dir;
  init(spec);
}

MountedFs::MountedFs(MountSpec spec) {
  init(spec);
}

void MountedFs::init(const MountSpec& spec) {
  std::string tmpl = spec.dir_prefix + "XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  dir_ = tmpl;
  log_ = dir_ + ".log";
  ::chmod(dir_.c_str(), 0755);
  if (spec.mountpoint_owner) {
    REQUIRE(::chown(dir_.c_str(), *spec.mountpoint_owner, static_cast<gid_t>(-1)) == 0);
  }
  if (reference_tmpfs()) {
    start_tmpfs(spec.flags);
  } else {
    start(spec);
  }
}

MountedFs::~MountedFs() {
  unmount();
}

std::string MountedFs::path(std::string_view rel) const {
  std::string p = dir_;
  if (!rel.empty()) {
    p += '/';
    p += rel;
  }
  return p;
}

void MountedFs::start_tmpfs(const std::vector<std::string>& flags) {
  std::string opts = "mode=0755";
  for (size_t i = 0; i + 1 < flags.size(); ++i) {
    if (flags[i] == "--capacity") opts += ",size=" + tmpfs_size(flags[i + 1]);
    if (flags[i] == "--max-inodes") opts += ",nr_inodes=" + flags[i + 1];
  }
  if (::mount("sandfs-it", dir_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
    const int e = errno;
    cleanup_files();
    FAIL("mount tmpfs on " << dir_ << ": " << std::strerror(e));
  }
  mounted_ = true;
}

void MountedFs::start(const MountSpec& spec) {
  REQUIRE_FALSE(sandfsd_path().empty());
  int ready[2];
  REQUIRE(::pipe2(ready, O_CLOEXEC) == 0);
  const int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(log_fd >= 0);

  std::vector<std::string> args = spec.launcher;
  args.insert(args.end(), {sandfsd_path(), "mount", "--backend", spec.backend});
  args.insert(args.end(), spec.flags.begin(), spec.flags.end());
  // The child's copy of the pipe's write end is dup()ed, which drops O_CLOEXEC; fd numbers are
  // the same after fork, so the number can be put on the command line now.
  const int parent_pid = ::getpid();
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec, apart from building argv.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent_pid) ::_exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const int ready_fd = ::dup(ready[1]);
    std::vector<std::string> full = args;
    full.push_back("--ready-fd");
    full.push_back(std::to_string(ready_fd));
    full.push_back(dir_);
    std::vector<char*> argv;
    for (auto& a : full)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  ::close(log_fd);
  ::close(ready[1]);

  // Ready when the server says so, or when the kernel lists the mount (whichever comes first);
  // failed when the server exits first.
  const auto deadline = Clock::now() + std::chrono::milliseconds(start_timeout_ms);
  bool ready_seen = false;
  std::string said;
  while (!ready_seen) {
    pollfd p{ready[0], POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char buf[64];
      const ssize_t n = ::read(ready[0], buf, sizeof buf);
      if (n > 0) said.append(buf, static_cast<size_t>(n));
      if (said.find("ready\n") != std::string::npos) ready_seen = true;
    }
    if (!ready_seen && is_mounted(dir_)) ready_seen = true;
    if (ready_seen) break;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      ::close(ready[0]);
      const std::string tail = log_tail();
      cleanup_files();
      FAIL("sandfsd exited before the mount was ready (status " << status << "); its log:\n"
                                                                << tail);
    }
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      ::close(ready[0]);
      ::umount2(dir_.c_str(), MNT_DETACH);
      const std::string tail = log_tail();
      cleanup_files();
      FAIL("sandfsd did not mount within " << start_timeout_ms << " ms; its log:\n" << tail);
    }
  }
  ::close(ready[0]);
  mounted_ = true;
  // "ready" must mean mounted: the tests' first syscall must reach this filesystem.
  REQUIRE(is_mounted(dir_));
}

int MountedFs::wait_server(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return status;
}

int MountedFs::signal_and_wait(int sig) {
  REQUIRE(pid_ > 0);
  REQUIRE(::kill(pid_, sig) == 0);
  const int status = wait_server(stop_timeout_ms);
  if (!is_mounted(dir_)) mounted_ = false;
  return status;
}

void MountedFs::unmount() {
  if (reference_tmpfs()) {
    if (mounted_ && ::umount2(dir_.c_str(), 0) != 0) ::umount2(dir_.c_str(), MNT_DETACH);
    mounted_ = false;
    cleanup_files();
    return;
  }
  if (mounted_ && is_mounted(dir_)) {
    if (::umount2(dir_.c_str(), 0) != 0) {
      const int e = errno;
      ::umount2(dir_.c_str(), MNT_DETACH);
      FAIL_CHECK("umount " << dir_ << ": " << errno_name(e)
                           << " (did the test leave a file open?)");
    }
  }
  mounted_ = false;
  if (pid_ > 0) {
    const int status = wait_server(stop_timeout_ms);
    INFO("sandfsd log tail:\n" << log_tail());
    INFO("sandfsd wait status " << status << " (-1: still running " << stop_timeout_ms
                                << " ms after umount, killed)");
    CHECK(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  cleanup_files();
}

void MountedFs::cleanup_files() {
  if (dir_.empty()) return;
  if (!is_mounted(dir_)) {
    ::rmdir(dir_.c_str());
    if (!host_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(host_dir_, ec);
      host_dir_.clear();
    }
  }
  const char* keep = std::getenv("SANDFS_IT_KEEP_LOGS");
  if (!(keep && *keep == '1')) ::unlink(log_.c_str());
}

std::string MountedFs::log_tail() const {
  std::ifstream in(log_);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  constexpr size_t keep = 4000;
  return all.size() > keep ? "..." + all.substr(all.size() - keep) : all;
}

}  // namespace sandfs::it
