// The asynchronous host-syscall layer.
//
// Each server thread runs its own boost::asio::io_context and owns one Ring. File and metadata
// syscalls are submitted to the Ring's io_uring (liburing) and awaited; the Ring drains
// completions when its eventfd fires and resumes the waiting coroutines on that same io_context.
// Where io_uring cannot be set up (kernel.io_uring_disabled, a seccomp filter, an old kernel), the
// same calls run on a small process-wide thread pool and resume on the ring's io_context; the
// server says so once in its log.
//
// Usage (inside a coroutine running on the thread that owns the ring):
//   io::Ring& ring = io::Ring::current();
//   Result<size_t> n = co_await ring.preadv(fd, iov, offset);
//
// ## Operations
// * Every operation is an Asio asynchronous operation. Without a token it returns a
//   Task<Result<...>> to co_await; any other completion token works too (a callback, deferred,
//   as_tuple(use_awaitable), ...). The handler gets exactly one argument, the Result.
// * Errors are values: a negative kernel result becomes Errno (positive). A read or write may be
//   short; the count is returned and the caller decides what to do with the rest.
// * The handler runs on its associated executor (by default the ring's io_context), never inside
//   the call that started the operation. Operations cannot be cancelled once started.
// * Pointers passed in (iovecs and the buffers they describe, paths) must stay valid until the
//   operation completes. A coroutine that co_awaits the call directly always satisfies this;
//   with a callback token the caller must keep them alive itself. open_how is copied.
// * Offsets are explicit: there is no "current file position" form. Meant for regular files and
//   directories: on a pipe or socket io_uring reads (ignoring the offset) where pread(2), and so
//   the thread pool, answers ESPIPE.
//
// ## Threads
// A Ring is not thread-safe: start operations only from the thread running its io_context.
// The ring may be created on another thread than the one that runs it, but not used before.
//
// ## Lifetime
// * Destroy the Ring after its io_context has stopped running (run() returned or stop()ped) and
//   before the io_context itself is destroyed.
// * The destructor ends every operation still under way without running its handler (the handler,
//   and with it an awaiting coroutine's frame, is destroyed), the way io_context destroys the
//   handlers it never ran. Operations the kernel or the pool are still working on are cancelled
//   and waited for, a few seconds at most; if one is still running after that (a syscall stuck
//   in a hung filesystem), its record and the memory it may write to are leaked, never freed
//   under it, and the destructor logs an error.
// * Handlers destroyed that way must not start new operations on this ring; if they do, those
//   complete with ECANCELED on the (stopped) io_context.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/filesystem.hpp"  // Task
#include "core/io/op.hpp"
#include "core/result.hpp"

namespace sandfs::io {

namespace detail {
class Backend;
}

class Ring {
 public:
  enum class Mode {
    automatic,    // io_uring if the kernel lets us, else the thread pool (logged once)
    io_uring,     // io_uring or a std::system_error from the constructor
    thread_pool,  // always the thread pool (tests, operator override)
  };

  // Counters for tests and benchmarks. Only the ring's own thread updates them.
  struct Stats {
    uint64_t ops_started = 0;    // operations started, either backend
    uint64_t sqes = 0;           // operations handed to io_uring
    uint64_t enter_calls = 0;    // io_uring_enter system calls made to submit them
    uint64_t max_in_flight = 0;  // most operations in the ring (SQ + kernel) at once
    uint64_t backlogged = 0;     // operations that waited in user space for room in the ring
    uint64_t pool_jobs = 0;      // operations run on the blocking pool
    uint64_t inline_calls = 0;   // in-core calls made on the ring's own thread
  };

  // The default completion token: the operation returns a Task to co_await.
  using DefaultToken = boost::asio::use_awaitable_t<>;

  // Binds a ring to `ctx`. Mode::automatic tries io_uring and falls back to the thread pool.
  // `entries` is the submission queue size (1..32768; more operations than fit wait in user
  // space). Throws std::invalid_argument for a bad `entries`, and std::system_error in
  // Mode::io_uring when no ring can be created.
  explicit Ring(boost::asio::io_context& ctx, unsigned entries = 256, Mode mode = Mode::automatic);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  bool uses_io_uring() const;
  boost::asio::io_context& context() { return ctx_; }
  Stats stats() const;

  // The ring installed for the calling thread. Precondition: a Scope is active on this thread
  // (throws std::logic_error otherwise: a programming error).
  static Ring& current();
  static Ring* current_or_null();

  // Installs a ring as the calling thread's current ring for the Scope's lifetime. Scopes nest:
  // the destructor restores the ring that was current before.
  class Scope {
   public:
    explicit Scope(Ring& ring);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Ring* previous_;
  };

  // ---- data ----

  // preadv(2)/pwritev(2) at `offset`: the byte count (possibly short) or an errno.
  template <class Token = DefaultToken>
  auto preadv(int fd, std::span<const iovec> iov, uint64_t offset, Token&& token = {}) {
    return initiate<Result<size_t>>(rw_call(detail::OpCode::preadv, fd, iov, offset),
                                    std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto pwritev(int fd, std::span<const iovec> iov, uint64_t offset, Token&& token = {}) {
    return initiate<Result<size_t>>(rw_call(detail::OpCode::pwritev, fd, iov, offset),
                                    std::forward<Token>(token));
  }
  // fdatasync(2) when `datasync`, else fsync(2).
  template <class Token = DefaultToken>
  auto fsync(int fd, bool datasync, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::fsync, .fd = fd, .mode = datasync ? 1u : 0u};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto fallocate(int fd, int mode, uint64_t offset, uint64_t length, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::fallocate,
                   .fd = fd,
                   .mode = static_cast<unsigned>(mode),
                   .offset = offset,
                   .length = length};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }

  // ---- metadata ----

  // openat2(2): the new fd or an errno.
  template <class Token = DefaultToken>
  auto openat2(int dirfd, const char* path, const open_how& how, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::openat2, .fd = dirfd, .path = path, .how = how};
    return initiate<Result<int>>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto close(int fd, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::close, .fd = fd};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto statx(int dirfd, const char* path, int flags, unsigned mask, Token&& token = {}) {
    detail::Call c{
        .code = detail::OpCode::statx, .fd = dirfd, .path = path, .mode = mask, .flags = flags};
    return initiate<Result<struct statx>>(std::move(c), std::forward<Token>(token));
  }
  // Where a call's object lives, as far as the caller knows (see fstatx).
  enum class Residency {
    unknown,  // any filesystem: the call may wait on a disk or a server
    in_core,  // a local filesystem (ext4, xfs, btrfs, tmpfs...) answering from the in-core inode
  };
  // statx(2) of the object `fd` holds (AT_EMPTY_PATH added to `flags`). io_uring hands every
  // statx to an io-wq worker (measured here: 12-15 us a call, against 0.2 us for the syscall).
  // With Residency::in_core the caller vouches that the fd's filesystem fills a getattr of a
  // pinned inode from memory, so the ring makes the call on its own thread and completes it
  // through a post like any other; network and FUSE filesystems, which may ask a server, must
  // pass Residency::unknown and go through io_uring.
  template <class Token = DefaultToken>
  auto fstatx(int fd, int flags, unsigned mask, Residency where, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::statx,
                   .fd = fd,
                   .path = "",
                   .mode = mask,
                   .flags = flags | AT_EMPTY_PATH,
                   .in_core = where == Residency::in_core};
    return initiate<Result<struct statx>>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto unlinkat(int dirfd, const char* path, int flags, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::unlinkat, .fd = dirfd, .path = path, .flags = flags};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto renameat2(int old_dirfd, const char* old_path, int new_dirfd, const char* new_path,
                 unsigned flags, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::renameat2,
                   .fd = old_dirfd,
                   .fd2 = new_dirfd,
                   .path = old_path,
                   .path2 = new_path,
                   .flags = static_cast<int>(flags)};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto mkdirat(int dirfd, const char* path, mode_t mode, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::mkdirat, .fd = dirfd, .path = path, .mode = mode};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }
  // Creates `path` (relative to `dirfd`) as a symlink to `target`.
  template <class Token = DefaultToken>
  auto symlinkat(const char* target, int dirfd, const char* path, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::symlinkat, .fd = dirfd, .path = target, .path2 = path};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }
  template <class Token = DefaultToken>
  auto linkat(int old_dirfd, const char* old_path, int new_dirfd, const char* new_path, int flags,
              Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::linkat,
                   .fd = old_dirfd,
                   .fd2 = new_dirfd,
                   .path = old_path,
                   .path2 = new_path,
                   .flags = flags};
    return initiate<Status>(std::move(c), std::forward<Token>(token));
  }

  // getxattr(2) of `path` (the last component followed: meant for /proc/self/fd/N magic links
  // to an O_PATH fd's object, which the *xattrat calls do not accept): the value's length, or
  // an errno (ENODATA: no such attribute, ERANGE: `size` too small). io_uring hands it to an
  // io-wq worker, a cheaper trip than the blocking pool. `size` at most 64 KiB.
  template <class Token = DefaultToken>
  auto getxattr(const char* path, const char* name, void* value, size_t size, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::getxattr,
                   .path = path,
                   .path2 = name,
                   .length = size,
                   .value = value};
    return initiate<Result<long>>(std::move(c), std::forward<Token>(token));
  }

  // Syscalls io_uring has no opcode for (fchmodat, utimensat, copy_file_range, getdents64, ...)
  // run here: `fn` runs on the blocking pool (also when the ring uses io_uring) and must return
  // a long (>= 0) or -errno; the result is delivered on the ring's io_context. `fn` must not
  // throw and must not touch the ring or its io_context.
  template <class Token = DefaultToken>
  auto run_blocking(std::function<long()> fn, Token&& token = {}) {
    detail::Call c{.code = detail::OpCode::blocking, .fn = std::move(fn)};
    return initiate<Result<long>>(std::move(c), std::forward<Token>(token));
  }

 private:
  static detail::Call rw_call(detail::OpCode code, int fd, std::span<const iovec> iov,
                              uint64_t offset);

  template <class R, class Token>
  auto initiate(detail::Call&& call, Token&& token) {
    return boost::asio::async_initiate<Token, void(R)>(
        [this](auto handler, detail::Call c) {
          using Handler = decltype(handler);
          using IoExecutor = boost::asio::io_context::executor_type;
          start(detail::HandlerOp<Handler, IoExecutor, R>::create(
              std::move(handler), ctx_.get_executor(), std::move(c)));
        },
        token, std::move(call));
  }

  // Takes ownership of `op`; never completes it before returning.
  void start(detail::Op* op);

  boost::asio::io_context& ctx_;
  std::shared_ptr<detail::Backend> backend_;
  uint64_t ops_started_ = 0;
  uint64_t inline_calls_ = 0;
};

}  // namespace sandfs::io
