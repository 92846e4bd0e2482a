// The asynchronous host-syscall layer.
//
// Each server thread runs its own boost::asio::io_context and owns one Ring. File and metadata
// syscalls are submitted to the Ring's io_uring (liburing) and awaited; a coroutine on the Asio
// io_context drains completions when the ring's eventfd fires and resumes the waiting coroutines
// on that same io_context. Where io_uring cannot be set up (kernel.io_uring_disabled, a seccomp
// filter, an old kernel), the same calls run on a small shared thread pool and resume on the
// caller's io_context; the server says so once in its log.
//
// Usage (inside a coroutine running on the thread that owns the ring):
//   io::Ring& ring = io::Ring::current();
//   Result<size_t> n = co_await ring.preadv(fd, iov, offset);
//
// A Ring is not thread-safe: only coroutines running on its io_context may use it.
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include <boost/asio/io_context.hpp>

#include "core/filesystem.hpp"  // Task
#include "core/result.hpp"

namespace sandfs::io {

class Ring {
 public:
  enum class Mode { automatic, io_uring, thread_pool };

  // Binds a ring to `ctx`. Mode::automatic tries io_uring and falls back to the thread pool.
  explicit Ring(boost::asio::io_context& ctx, unsigned entries = 256, Mode mode = Mode::automatic);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  bool uses_io_uring() const;
  boost::asio::io_context& context();

  // The ring installed for the calling thread. Precondition: a Scope is active on this thread.
  static Ring& current();
  static Ring* current_or_null();

  // Installs a ring as the calling thread's current ring for the Scope's lifetime.
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
  Task<Result<size_t>> preadv(int fd, std::span<const iovec> iov, uint64_t offset);
  Task<Result<size_t>> pwritev(int fd, std::span<const iovec> iov, uint64_t offset);
  Task<Status> fsync(int fd, bool datasync);
  Task<Status> fallocate(int fd, int mode, uint64_t offset, uint64_t length);

  // ---- metadata ----
  Task<Result<int>> openat2(int dirfd, const char* path, const open_how& how);
  Task<Status> close(int fd);
  Task<Result<struct statx>> statx(int dirfd, const char* path, int flags, unsigned mask);
  Task<Status> unlinkat(int dirfd, const char* path, int flags);
  Task<Status> renameat2(int old_dirfd, const char* old_path, int new_dirfd, const char* new_path,
                         unsigned flags);
  Task<Status> mkdirat(int dirfd, const char* path, mode_t mode);
  Task<Status> symlinkat(const char* target, int dirfd, const char* path);
  Task<Status> linkat(int old_dirfd, const char* old_path, int new_dirfd, const char* new_path,
                      int flags);

  // Syscalls io_uring has no opcode for (fchmodat, utimensat, copy_file_range, getdents64, ...)
  // run here: `fn` runs on the blocking pool and must return a long (>= 0) or -errno.
  Task<Result<long>> run_blocking(std::function<long()> fn);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandfs::io
