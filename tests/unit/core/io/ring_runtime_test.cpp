// io::Ring as a runtime: queue depth, batching, the SQ-full path, the blocking pool, which thread
// completions run on, re-entrancy, shutdown, Scope, and the fallback when io_uring is refused.
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "core/io/ring.hpp"
#include "io_test_support.hpp"

namespace asio = boost::asio;
using sandfs::Result;
using sandfs::Status;
using sandfs::Task;
using sandfs::io::Ring;
using sandfs::io::test::mode_name;
using sandfs::io::test::run_coro;
using sandfs::io::test::TempDir;

namespace {

Ring::Mode any_mode() {
  const Ring::Mode mode = GENERATE(Ring::Mode::io_uring, Ring::Mode::thread_pool);
  return mode;
}

// A file of `blocks` 4 KiB blocks; block i is filled with the byte (i * 7 + 1) & 0xff.
int make_pattern_file(const TempDir& dir, const char* name, size_t blocks) {
  const int fd = ::openat(dir.fd(), name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  std::vector<char> block(4096);
  for (size_t i = 0; i < blocks; ++i) {
    std::memset(block.data(), static_cast<int>((i * 7 + 1) & 0xff), block.size());
    REQUIRE(::pwrite(fd, block.data(), block.size(), static_cast<off_t>(i * 4096)) == 4096);
  }
  return fd;
}

// A coroutine local that sets a flag when destroyed: shows whether the frame was destroyed.
struct FrameProbe {
  explicit FrameProbe(std::shared_ptr<std::atomic<bool>> flag) : destroyed(std::move(flag)) {}
  FrameProbe(const FrameProbe&) = delete;
  FrameProbe& operator=(const FrameProbe&) = delete;
  ~FrameProbe() { *destroyed = true; }
  std::shared_ptr<std::atomic<bool>> destroyed;
};

}  // namespace

TEST_CASE("io::Ring: 64 concurrent preadv on one fd all complete with the right bytes", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  constexpr size_t blocks = 256;
  const int fd = make_pattern_file(dir, "pattern", blocks);
  asio::io_context ctx;
  Ring ring(ctx, 128, mode);

  constexpr int readers = 64;
  int done = 0;
  int wrong = 0;
  for (int r = 0; r < readers; ++r) {
    asio::co_spawn(
        ctx,
        [&, r]() -> Task<void> {
          std::vector<char> buf(4096);
          for (int i = 0; i < 8; ++i) {
            const size_t block = static_cast<size_t>(r * 13 + i * 31) % blocks;
            const std::array<iovec, 1> iov{{{buf.data(), buf.size()}}};
            auto n = co_await ring.preadv(fd, iov, block * 4096);
            const char want = static_cast<char>((block * 7 + 1) & 0xff);
            if (!n.ok() || *n != 4096 || buf.front() != want || buf.back() != want) ++wrong;
          }
          ++done;
        },
        asio::detached);
  }
  ctx.run();
  ::close(fd);
  CHECK(done == readers);
  CHECK(wrong == 0);
  const Ring::Stats s = ring.stats();
  CHECK(s.ops_started == readers * 8);
  if (mode == Ring::Mode::io_uring) {
    CHECK(s.sqes == readers * 8);
    CHECK(s.max_in_flight == readers);  // every reader's op was in the ring at once
    // Batched: one io_uring_enter per event-loop turn, not one per operation.
    CHECK(s.enter_calls <= 8 * 2);
    CHECK(s.pool_jobs == 0);
  } else {
    CHECK(s.pool_jobs == readers * 8);
    CHECK(s.sqes == 0);
  }
}

TEST_CASE("io::Ring: 100 concurrent ops through a 4-entry ring", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  const int fd = make_pattern_file(dir, "pattern", 100);
  asio::io_context ctx;
  Ring ring(ctx, 4, mode);

  int ok = 0;
  for (int i = 0; i < 100; ++i) {
    asio::co_spawn(
        ctx,
        [&, i]() -> Task<void> {
          if (i % 2) {
            char buf[64];
            const std::array<iovec, 1> iov{{{buf, sizeof buf}}};
            auto n = co_await ring.preadv(fd, iov, static_cast<uint64_t>(i) * 4096);
            if (n.ok() && *n == sizeof buf && buf[0] == static_cast<char>((i * 7 + 1) & 0xff)) {
              ++ok;
            }
          } else {
            auto st = co_await ring.statx(fd, "", AT_EMPTY_PATH, STATX_SIZE);
            if (st.ok() && st->stx_size == 100 * 4096) ++ok;
          }
        },
        asio::detached);
  }
  ctx.run();
  ::close(fd);
  CHECK(ok == 100);
  const Ring::Stats s = ring.stats();
  CHECK(s.ops_started == 100);
  if (mode == Ring::Mode::io_uring) {
    CHECK(s.sqes == 100);
    CHECK(s.backlogged > 0);      // waited in user space
    CHECK(s.max_in_flight <= 8);  // never more than the CQ holds (2 x entries)
    CHECK(s.max_in_flight > 4);   // the SQ filled, was submitted inline, and filled again
  }
}

TEST_CASE("io::Ring: SQ-full path with a single-entry ring and a deep chain", "[io]") {
  // One coroutine issuing thousands of back-to-back operations: each completion resumes the
  // coroutine from the ring's reaper, which must not grow the stack.
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 1, mode);
  const int iterations = mode == Ring::Mode::io_uring ? 5000 : 500;
  run_coro(ctx, [&]() -> Task<void> {
    for (int i = 0; i < iterations; ++i) {
      auto st = co_await ring.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE);
      REQUIRE(st.ok());
    }
  }());
  CHECK(ring.stats().ops_started == static_cast<uint64_t>(iterations));
}

TEST_CASE("io::Ring: completions that arrive later come through the eventfd", "[io]") {
  // A read on an empty pipe is parked in the kernel; the data arrives from a timer on the same
  // io_context, so the only way back is the eventfd wakeup. (io_uring only: pread(2) on a pipe
  // is ESPIPE, see ring.hpp.)
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
  asio::io_context ctx;
  Ring ring(ctx, 8, Ring::Mode::io_uring);
  asio::steady_timer timer(ctx);
  std::string got;
  for (int round = 0; round < 3; ++round) {
    got.clear();
    timer.expires_after(std::chrono::milliseconds(20));
    timer.async_wait([&](boost::system::error_code) { (void)!::write(pipe_fds[1], "ping", 4); });
    run_coro(ctx, [&]() -> Task<void> {
      char buf[16];
      const std::array<iovec, 1> iov{{{buf, sizeof buf}}};
      auto n = co_await ring.preadv(pipe_fds[0], iov, 0);
      REQUIRE(n.ok());
      got.assign(buf, *n);
    }());  // returns: nothing (no armed wait) is left holding the io_context
    CHECK(got == "ping");
  }
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_CASE("io::Ring: run_blocking runs on the pool and resumes on the io_context", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  asio::io_context ctx;
  Ring ring(ctx, 8, mode);
  const auto loop_thread = std::this_thread::get_id();
  run_coro(ctx, [&]() -> Task<void> {
    std::thread::id ran_on;
    auto r = co_await ring.run_blocking([&] {
      ran_on = std::this_thread::get_id();
      return 42L;
    });
    REQUIRE(r.ok());
    CHECK(*r == 42);
    CHECK(ran_on != loop_thread);
    CHECK(std::this_thread::get_id() == loop_thread);

    r = co_await ring.run_blocking([] { return -long{ENOTSUP}; });
    CHECK(r.error() == ENOTSUP);

    // A syscall with no io_uring opcode, errno captured on the pool thread.
    r = co_await ring.run_blocking(
        [] { return ::fchmodat(-1, "x", 0644, 0) < 0 ? -long{errno} : 0L; });
    CHECK(r.error() == EBADF);

    // A throwing function is a bug, but must not take a pool thread down.
    r = co_await ring.run_blocking([]() -> long { throw std::runtime_error("oops"); });
    CHECK(r.error() == EIO);
  }());
  CHECK(ring.stats().pool_jobs == 4);
}

TEST_CASE("io::Ring: completions resume on the ring's io_context thread", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  std::unique_ptr<Ring> ring;
  std::thread::id loop_thread;
  std::atomic<int> wrong_thread{0};
  std::atomic<int> completed{0};

  std::thread loop([&] {
    loop_thread = std::this_thread::get_id();
    ring = std::make_unique<Ring>(ctx, 8, mode);  // created on the thread that runs it
    Ring::Scope scope(*ring);
    for (int c = 0; c < 8; ++c) {
      asio::co_spawn(
          ctx,
          [&]() -> Task<void> {
            Ring& r = Ring::current();
            for (int i = 0; i < 20; ++i) {
              auto st = co_await r.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE);
              if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
              auto b = co_await r.run_blocking([] { return 0L; });
              if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
              if (st.ok() && b.ok()) ++completed;
            }
          },
          asio::detached);
    }
    ctx.run();
    ring.reset();
  });
  loop.join();
  CHECK(completed == 8 * 20);
  CHECK(wrong_thread == 0);
  CHECK(loop_thread != std::this_thread::get_id());
}

TEST_CASE("io::Ring: any completion token works", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 8, mode);

  SECTION("a plain callback, never run inside the initiating call") {
    bool called = false;
    ring.mkdirat(dir.fd(), "d", 0700, [&](Status s) {
      CHECK(s.ok());
      called = true;
    });
    CHECK_FALSE(called);
    ctx.run();
    CHECK(called);
  }

  SECTION("a callback bound to another io_context runs there") {
    asio::io_context other;
    auto guard = asio::make_work_guard(other);
    std::thread other_thread([&] { other.run(); });
    const std::thread::id other_id = other_thread.get_id();
    std::thread::id ran_on;
    bool ok = false;
    ring.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE,
               asio::bind_executor(other, [&](Result<struct statx> st) {
                 ok = st.ok();
                 ran_on = std::this_thread::get_id();
               }));
    ctx.run();  // returns once the result is handed to `other`
    guard.reset();
    other_thread.join();
    CHECK(ok);
    CHECK(ran_on == other_id);
  }

  SECTION("callbacks that start the next operation from inside the completion") {
    int remaining = 1000;
    std::uintptr_t lowest = UINTPTR_MAX, highest = 0;
    std::function<void(Result<struct statx>)> next = [&](Result<struct statx> st) {
      CHECK(st.ok());
      const auto here = reinterpret_cast<std::uintptr_t>(&st);
      lowest = std::min(lowest, here);
      highest = std::max(highest, here);
      if (--remaining > 0) ring.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE, next);
    };
    ring.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE, next);
    ctx.run();
    CHECK(remaining == 0);
    CHECK(highest - lowest < 64 * 1024);  // no recursion through the reaper
  }
}

TEST_CASE("io::Ring: a throwing handler leaves the ring working", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 8, mode);
  int completed = 0;
  ring.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE,
             [](Result<struct statx>) { throw std::runtime_error("handler failed"); });
  for (int i = 0; i < 10; ++i) {
    ring.statx(dir.fd(), "", AT_EMPTY_PATH, STATX_TYPE, [&](Result<struct statx> st) {
      if (st.ok()) ++completed;
    });
  }
  CHECK_THROWS_WITH(ctx.run(), "handler failed");
  ctx.restart();
  ctx.run();
  CHECK(completed == 10);
  // And the ring still takes new work.
  run_coro(ctx, [&]() -> Task<void> {
    CHECK_ERRNO(co_await ring.mkdirat(dir.fd(), "after", 0700), 0);
  }());
}

TEST_CASE("io::Ring: destroying a ring", "[io]") {
  SECTION("never used") {
    const Ring::Mode mode = any_mode();
    asio::io_context ctx;
    { Ring ring(ctx, 8, mode); }
    ctx.run();
  }

  SECTION("with an idle io_context after work") {
    const Ring::Mode mode = any_mode();
    INFO("mode " << mode_name(mode));
    TempDir dir;
    asio::io_context ctx;
    auto ring = std::make_unique<Ring>(ctx, 8, mode);
    run_coro(ctx, [&]() -> Task<void> {
      CHECK_ERRNO(co_await ring->mkdirat(dir.fd(), "x", 0700), 0);
      CHECK_ERRNO(co_await ring->run_blocking([] { return 1L; }), 0);
    }());
    ring.reset();
    ctx.restart();
    CHECK(ctx.run() == 0);  // nothing left behind
  }

  SECTION("with an io_uring read waiting on an empty pipe") {
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC) == 0);
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    bool resumed = false;
    {
      asio::io_context ctx;
      auto ring = std::make_unique<Ring>(ctx, 8, Ring::Mode::io_uring);
      asio::co_spawn(
          ctx,
          [&]() -> Task<void> {
            FrameProbe probe(destroyed);
            char buf[8];
            const std::array<iovec, 1> iov{{{buf, sizeof buf}}};
            auto n = co_await ring->preadv(pipe_fds[0], iov, 0);
            resumed = true;
            (void)n;
          },
          asio::detached);
      ctx.run_for(std::chrono::milliseconds(50));  // submitted, then parked in the kernel
      CHECK(ring->stats().sqes == 1);
      CHECK_FALSE(resumed);
      ctx.stop();
      ring.reset();  // cancels the read and destroys its handler without running it
      CHECK_FALSE(resumed);
    }  // Asio unwinds the coroutine's frames through its executor: they go with the io_context
    CHECK(*destroyed);
    CHECK_FALSE(resumed);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }

  SECTION("with a job still on the blocking pool") {
    const Ring::Mode mode = any_mode();
    INFO("mode " << mode_name(mode));
    auto destroyed = std::make_shared<std::atomic<bool>>(false);
    std::atomic<bool> started{false};
    bool resumed = false;
    {
      asio::io_context ctx;
      auto ring = std::make_unique<Ring>(ctx, 8, mode);
      asio::co_spawn(
          ctx,
          [&]() -> Task<void> {
            FrameProbe probe(destroyed);
            auto r = co_await ring->run_blocking([&] {
              started = true;
              std::this_thread::sleep_for(std::chrono::milliseconds(200));
              return 0L;
            });
            resumed = true;
            (void)r;
          },
          asio::detached);
      ctx.run_for(std::chrono::milliseconds(20));
      ctx.stop();
      ring.reset();  // waits for the job; its result lands in the stopped io_context
      CHECK(started);
      CHECK_FALSE(resumed);
    }  // ~io_context destroys the undelivered result and with it the coroutine
    CHECK(*destroyed);
    CHECK_FALSE(resumed);
  }
}

TEST_CASE("io::Ring::Scope installs the current ring and nests", "[io]") {
  asio::io_context ctx;
  Ring a(ctx, 8, Ring::Mode::thread_pool);
  Ring b(ctx, 8, Ring::Mode::thread_pool);
  CHECK(Ring::current_or_null() == nullptr);
  CHECK_THROWS_AS(Ring::current(), std::logic_error);
  {
    Ring::Scope sa(a);
    CHECK(&Ring::current() == &a);
    {
      Ring::Scope sb(b);
      CHECK(&Ring::current() == &b);
      Ring* on_other_thread = &a;
      std::thread([&] { on_other_thread = Ring::current_or_null(); }).join();
      CHECK(on_other_thread == nullptr);  // per thread
    }
    CHECK(&Ring::current() == &a);
  }
  CHECK(Ring::current_or_null() == nullptr);
}

namespace {

// In a child process: make io_uring_setup fail with `error` through a seccomp filter, as a
// container runtime would, then check what the rings do. Returns the child's exit status.
int child_without_io_uring(int error, int log_fd) {
  ::dup2(log_fd, STDERR_FILENO);
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<unsigned>(error) & 0xffff)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(std::size(filter)), filter};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return 10;
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) return 11;

  asio::io_context ctx;
  {
    Ring first(ctx, 8, Ring::Mode::automatic);
    if (first.uses_io_uring()) return 12;
    Ring second(ctx, 8, Ring::Mode::automatic);  // must not log again
    if (second.uses_io_uring()) return 13;
  }
  try {
    Ring forced(ctx, 8, Ring::Mode::io_uring);
    return 14;
  } catch (const std::system_error& e) {
    if (e.code().value() != error) return 15;
  }
  return 0;
}

}  // namespace

TEST_CASE("io::Ring falls back to the thread pool when io_uring is refused", "[io]") {
  const int error = GENERATE(EPERM, ENOSYS);
  INFO("io_uring_setup fails with " << std::strerror(error));
  int log_pipe[2];
  REQUIRE(::pipe2(log_pipe, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(child_without_io_uring(error, log_pipe[1]));
  ::close(log_pipe[1]);
  std::string log;
  char buf[512];
  for (ssize_t n; (n = ::read(log_pipe[0], buf, sizeof buf)) > 0;)
    log.append(buf, size_t(n));
  ::close(log_pipe[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO("child log: " << log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Logged once per process, with the reason.
  const std::string line = "io_uring is unavailable";
  const size_t first = log.find(line);
  REQUIRE(first != std::string::npos);
  CHECK(log.find(line, first + 1) == std::string::npos);
  CHECK(log.find(error == EPERM ? "EPERM" : "ENOSYS") != std::string::npos);
}
