// Small helpers for tests that drive real syscalls: assertions that name the errno, RAII fds,
// whole-file I/O, and running a step as another user in a child process.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace sandfs::it {

// "ENOENT" for ENOENT, "0" for success: failure messages then show names, not numbers.
inline std::string errno_name(int e) {
  if (e == 0) return "0";
  const char* n = strerrorname_np(e);
  return n ? n : std::to_string(e);
}

// Fails the test (REQUIRE-style) when a syscall returned -1, naming the call and errno.
template <class T>
T sys_ok(T r, const char* expr, const char* file, int line) {
  if (r == static_cast<T>(-1)) {
    const int e = errno;
    FAIL(file << ":" << line << ": " << expr << " failed: " << errno_name(e) << " ("
              << std::strerror(e) << ")");
  }
  return r;
}

// Runs `call`, returns its errno if it returned -1, else 0.
template <class F>
int errno_of(F&& call) {
  errno = 0;
  const auto r = call();
  return r == static_cast<decltype(r)>(-1) ? errno : 0;
}

}  // namespace sandfs::it

// SYS(call): the call's result; the test stops with the errno named if it returned -1.
#define SYS(call) ::sandfs::it::sys_ok((call), #call, __FILE__, __LINE__)

// CHECK_ERRNO(E, call): the call must fail with errno E ("ENOENT" == "ENOENT" in messages).
#define CHECK_ERRNO(expected, call) \
  CHECK(::sandfs::it::errno_name(::sandfs::it::errno_of([&] { return (call); })) == #expected)
#define REQUIRE_ERRNO(expected, call) \
  REQUIRE(::sandfs::it::errno_name(::sandfs::it::errno_of([&] { return (call); })) == #expected)

namespace sandfs::it {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  operator int() const { return fd_; }  // NOLINT: lets an Fd go straight into a syscall
  // close(2) with its result checked (close can report a deferred write error).
  int close() { return ::close(std::exchange(fd_, -1)); }
  void reset() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

#define OPEN(...) ::sandfs::it::Fd(SYS(::open(__VA_ARGS__)))

// Deterministic bytes: the same (seed, offset) gives the same byte, so any range can be checked
// without keeping the data around.
inline char pattern_byte(uint64_t seed, uint64_t off) {
  uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ (seed * 0xBF58476D1CE4E5B9ull);
  x ^= x >> 29;
  return static_cast<char>(x & 0xff);
}
inline std::string pattern(uint64_t seed, uint64_t off, size_t len) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i)
    s[i] = pattern_byte(seed, off + i);
  return s;
}

// Writes all of `data` at `off` (pwrite loop); REQUIREs success.
void pwrite_all(int fd, std::string_view data, off_t off);
// Reads up to `len` bytes at `off` (pread loop, stops at EOF); REQUIREs success.
std::string pread_all(int fd, size_t len, off_t off);
// Whole-file helpers by path.
void write_file(const std::string& path, std::string_view data, mode_t mode = 0644);
std::string read_file(const std::string& path);
struct stat stat_of(const std::string& path);
struct stat lstat_of(const std::string& path);
struct stat fstat_of(int fd);
bool exists(const std::string& path);  // lstat succeeds
// Names in a directory (without "." and ".."), via readdir(3).
std::set<std::string> list_dir(const std::string& path);

// Runs `step` in a forked child as uid/gid 65534 with no supplementary groups (what
// `setpriv --reuid=65534 --regid=65534 --clear-groups` does), and returns what the step returned:
// by convention 0 for success or an errno. Returns -1 if the child could not run the step.
int as_nobody(const std::function<int()>& step);
inline constexpr uid_t nobody_uid = 65534;
inline constexpr gid_t nobody_gid = 65534;

// Calls `call` and returns 0 or errno: for use inside as_nobody steps.
template <class F>
int rc(F&& call) {
  return errno_of(std::forward<F>(call));
}

}  // namespace sandfs::it
