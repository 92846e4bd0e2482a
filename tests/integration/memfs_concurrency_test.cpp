// Several processes at once through the kernel: each writes its own file and its own region of a
// shared file, and creates names in a shared directory; the contents are checked afterwards.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

constexpr int workers = 4;
constexpr size_t own_size = 3 * 1024 * 1024 + 77;
// Regions of the shared file: deliberately not page aligned, so neighbours share pages.
constexpr size_t region = 1024 * 1024 + 123;
constexpr int names_each = 300;

// The child's work; returns 0 or an errno-like code (no test macros in a child).
int worker(const MountedFs& m, int id) {
  const auto seed = static_cast<uint64_t>(100 + id);
  const int own = ::open(m.path("own-" + std::to_string(id)).c_str(), O_CREAT | O_WRONLY, 0644);
  const int shared = ::open(m.path("shared").c_str(), O_WRONLY);
  if (own < 0 || shared < 0) return 1;
  // Chunks of varying size, interleaved between the two files, each with pwrite at its offset.
  size_t own_off = 0, shared_off = 0;
  size_t step = 1000 + 7 * static_cast<size_t>(id);
  while (own_off < own_size || shared_off < region) {
    if (own_off < own_size) {
      const size_t n = std::min(step, own_size - own_off);
      const std::string d = pattern(seed, own_off, n);
      if (::pwrite(own, d.data(), n, static_cast<off_t>(own_off)) != static_cast<ssize_t>(n)) {
        return 2;
      }
      own_off += n;
    }
    if (shared_off < region) {
      const size_t n = std::min(step / 2 + 1, region - shared_off);
      const size_t abs = static_cast<size_t>(id) * region + shared_off;
      const std::string d = pattern(999, abs, n);
      if (::pwrite(shared, d.data(), n, static_cast<off_t>(abs)) != static_cast<ssize_t>(n)) {
        return 3;
      }
      shared_off += n;
    }
    step = step * 3 % 65521 + 512;
  }
  for (int i = 0; i < names_each; ++i) {
    const std::string p = m.path("dir/w" + std::to_string(id) + "-" + std::to_string(i));
    const int fd = ::open(p.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) return 4;
    if (::write(fd, p.data(), p.size()) != static_cast<ssize_t>(p.size())) return 5;
    if (::close(fd) != 0) return 6;
  }
  if (::close(own) != 0 || ::close(shared) != 0) return 7;
  return 0;
}

void run_workers(const MountedFs& m) {
  write_file(m.path("shared"), "");
  SYS(::mkdir(m.path("dir").c_str(), 0755));
  std::vector<pid_t> pids;
  for (int id = 0; id < workers; ++id) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(worker(m, id));
    pids.push_back(pid);
  }
  for (int id = 0; id < workers; ++id) {
    int status = 0;
    SYS(::waitpid(pids[static_cast<size_t>(id)], &status, 0));
    INFO("worker " << id);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  for (int id = 0; id < workers; ++id) {
    INFO("worker " << id);
    const std::string own = read_file(m.path("own-" + std::to_string(id)));
    CHECK(own.size() == own_size);
    CHECK(own == pattern(static_cast<uint64_t>(100 + id), 0, own_size));
  }
  const std::string shared = read_file(m.path("shared"));
  CHECK(shared.size() == workers * region);
  CHECK(shared == pattern(999, 0, workers * region));
  const std::set<std::string> names = list_dir(m.path("dir"));
  CHECK(names.size() == workers * names_each);
  for (int id = 0; id < workers; ++id) {
    const std::string p =
        m.path("dir/w" + std::to_string(id) + "-" + std::to_string(names_each - 1));
    CHECK(read_file(p) == p);
  }
}

}  // namespace

TEST_CASE(
    "processes writing concurrently to their own files and to disjoint regions of one "
    "file",
    "[concurrency]") {
  const std::string mode = GENERATE(as<std::string>{}, "default", "writeback");
  INFO(mode);
  std::vector<std::string> flags = {"--threads", "4"};
  if (mode == "writeback") flags.push_back("--writeback");
  MountedFs m(flags);
  run_workers(m);
}

TEST_CASE("racing O_CREAT|O_EXCL on the same names: exactly one process wins each name",
          "[concurrency]") {
  MountedFs m({"--threads", "4"});
  constexpr int names = 200;
  int pipes[workers][2];
  std::vector<pid_t> pids;
  for (int id = 0; id < workers; ++id) {
    REQUIRE(::pipe(pipes[id]) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Reports one byte per name: 1 if this process created it, 0 if EEXIST, 2 on other errors.
      for (int i = 0; i < names; ++i) {
        const int fd =
            ::open(m.path("n" + std::to_string(i)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        char r = 1;
        if (fd >= 0) {
          if (::write(fd, &id, sizeof id) != sizeof id) r = 2;
          ::close(fd);
        } else {
          r = errno == EEXIST ? 0 : 2;
        }
        if (::write(pipes[id][1], &r, 1) != 1) ::_exit(3);
      }
      ::_exit(0);
    }
    ::close(pipes[id][1]);
    pids.push_back(pid);
  }
  std::vector<int> winners(names, 0);
  std::vector<int> winner_id(names, -1);
  int errors = 0;
  for (int id = 0; id < workers; ++id) {
    std::string got(names, '\0');
    size_t done = 0;
    while (done < got.size()) {
      const ssize_t n = ::read(pipes[id][0], got.data() + done, got.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(pipes[id][0]);
    REQUIRE(done == got.size());
    for (int i = 0; i < names; ++i) {
      if (got[static_cast<size_t>(i)] == 1) {
        ++winners[static_cast<size_t>(i)];
        winner_id[static_cast<size_t>(i)] = id;
      }
      if (got[static_cast<size_t>(i)] == 2) ++errors;
    }
    int status = 0;
    SYS(::waitpid(pids[static_cast<size_t>(id)], &status, 0));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(errors == 0);
  int wrong = 0;
  for (int i = 0; i < names; ++i) {
    if (winners[static_cast<size_t>(i)] != 1) {
      ++wrong;
      continue;
    }
    // The file holds the winner's id.
    const std::string content = read_file(m.path("n" + std::to_string(i)));
    int id = -1;
    if (content.size() == sizeof id) std::memcpy(&id, content.data(), sizeof id);
    if (id != winner_id[static_cast<size_t>(i)]) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("fcntl and flock locks exclude other processes on the mount", "[concurrency][locks]") {
  MountedFs m;
  const std::string f = m.path("lockfile");
  write_file(f, std::string(100, 'l'));
  Fd fd = OPEN(f.c_str(), O_RDWR);
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  lk.l_start = 10;
  lk.l_len = 20;
  SYS(::fcntl(fd, F_SETLK, &lk));
  SYS(::flock(fd, LOCK_EX | LOCK_NB));

  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int cfd = ::open(f.c_str(), O_RDWR);
    if (cfd < 0) ::_exit(10);
    struct flock c {};
    c.l_type = F_WRLCK;
    c.l_whence = SEEK_SET;
    c.l_start = 15;
    c.l_len = 1;
    // Overlapping range: refused; F_GETLK names the holder.
    if (::fcntl(cfd, F_SETLK, &c) == 0 || (errno != EAGAIN && errno != EACCES)) ::_exit(11);
    if (::fcntl(cfd, F_GETLK, &c) != 0 || c.l_type != F_WRLCK || c.l_pid != ::getppid()) {
      ::_exit(12);
    }
    // A disjoint range is free.
    c.l_type = F_WRLCK;
    c.l_start = 50;
    c.l_len = 10;
    if (::fcntl(cfd, F_SETLK, &c) != 0) ::_exit(13);
    // flock on another open file description conflicts.
    if (::flock(cfd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) ::_exit(14);
    ::_exit(0);
  }
  int status = 0;
  SYS(::waitpid(pid, &status, 0));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
