// Internals of io::Ring's asynchronous operations. Include core/io/ring.hpp instead.
//
// An operation is an Op record: a Call (what to do, in syscall terms) plus the completion handler.
// The record is allocated with the handler's associated allocator when the operation is initiated
// and freed just before the handler runs, so the handler may start the next operation into the
// same memory. Backends never see the handler's type: they hold an Op* and end it through
// complete() or destroy().
#pragma once

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include "core/result.hpp"

namespace sandfs::io::detail {

enum class OpCode : uint8_t {
  preadv,
  pwritev,
  fsync,
  fallocate,
  openat2,
  close,
  statx,
  unlinkat,
  renameat2,
  mkdirat,
  symlinkat,
  linkat,
  getxattr,  // path-based, following the last component (a /proc/self/fd magic link)
  blocking,  // `fn` on the blocking pool
};

// One operation in syscall terms. The io_uring backend turns it into an SQE, the thread-pool
// backend into the plain syscall, so both run exactly the same request. Pointers refer to the
// caller's memory (iovecs, buffers, paths), which must stay valid until the operation completes.
struct Call {
  OpCode code = OpCode::blocking;
  int fd = -1;                  // fd, dirfd, old_dirfd (rename/link) or new_dirfd (symlinkat)
  int fd2 = -1;                 // new_dirfd (rename/link)
  const char* path = nullptr;   // path, old_path or symlink target
  const char* path2 = nullptr;  // new_path (rename/link), link path (symlinkat), xattr name
  const iovec* iov = nullptr;
  unsigned iov_count = 0;
  unsigned mode = 0;  // statx mask, mkdirat mode, fallocate mode, fsync: 1 = datasync
  int flags = 0;      // *at flags
  uint64_t offset = 0;
  uint64_t length = 0;          // fallocate; getxattr: the value buffer's size
  void* value = nullptr;        // getxattr: the value buffer
  open_how how{};               // openat2: a copy, so the caller's may be a temporary
  struct statx* stx = nullptr;  // statx: points into the op record
  std::function<long()> fn;     // blocking
  bool in_core = false;         // run on the ring's thread: the caller vouches it cannot wait
};

class Op {
 public:
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // Ends the operation with `res` (>= 0, or -errno) and runs the handler on its executor.
  void complete(long res) { finish_(this, res, true); }
  // Ends the operation without running the handler (shutdown): destroys the handler.
  void destroy() { finish_(this, 0, false); }

  Call call;
  Op* next = nullptr;  // intrusive queue link, used by whichever backend holds the op

 protected:
  using Finish = void (*)(Op*, long res, bool invoke);
  Op(Finish finish, Call&& c) : call(std::move(c)), finish_(finish) {}
  ~Op() = default;

 private:
  Finish finish_;
};

// Owns an Op until it is handed on; destroys it (handler unrun) if dropped.
struct OpDeleter {
  void operator()(Op* op) const { op->destroy(); }
};
using OpPtr = std::unique_ptr<Op, OpDeleter>;

// Per-result storage that must live in the op record while the kernel fills it.
template <class R>
struct ResultBuffer {
  void bind(Call&) {}
};
template <>
struct ResultBuffer<Result<struct statx>> {
  struct statx stx;
  void bind(Call& c) { c.stx = &stx; }
};

template <class R>
R to_result(long res, ResultBuffer<R>& buffer) {
  if (res < 0) return Errno{static_cast<int>(-res)};
  if constexpr (std::is_same_v<R, Status>) {
    return ok_status();
  } else if constexpr (std::is_same_v<R, Result<struct statx>>) {
    return buffer.stx;
  } else {
    using T = std::remove_reference_t<decltype(std::declval<R&>().value())>;
    return static_cast<T>(res);
  }
}

template <class Handler, class IoExecutor, class R>
class HandlerOp final : public Op {
  using Allocator = typename std::allocator_traits<boost::asio::associated_allocator_t<
      Handler, boost::asio::recycling_allocator<void>>>::template rebind_alloc<HandlerOp>;
  // Keeps the handler's executor (normally the ring's io_context) from running out of work
  // while the operation is away in the kernel or on the pool.
  using WorkExecutor = std::decay_t<decltype(boost::asio::prefer(
      std::declval<boost::asio::associated_executor_t<Handler, IoExecutor>>(),
      boost::asio::execution::outstanding_work.tracked))>;

 public:
  static Op* create(Handler&& handler, const IoExecutor& io_ex, Call&& call) {
    Allocator alloc(
        boost::asio::get_associated_allocator(handler, boost::asio::recycling_allocator<void>()));
    HandlerOp* p = std::allocator_traits<Allocator>::allocate(alloc, 1);
    try {
      ::new (static_cast<void*>(p)) HandlerOp(std::move(handler), io_ex, std::move(call));
    } catch (...) {
      std::allocator_traits<Allocator>::deallocate(alloc, p, 1);
      throw;
    }
    return p;
  }

 private:
  HandlerOp(Handler&& handler, const IoExecutor& io_ex, Call&& c)
      : Op(&finish, std::move(c)),
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler, io_ex),
                                  boost::asio::execution::outstanding_work.tracked)),
        handler_(std::move(handler)) {
    buffer_.bind(call);
  }

  static void finish(Op* base, long res, bool invoke) {
    auto* self = static_cast<HandlerOp*>(base);
    Allocator alloc(boost::asio::get_associated_allocator(
        self->handler_, boost::asio::recycling_allocator<void>()));
    Handler handler(std::move(self->handler_));
    WorkExecutor work(std::move(self->work_));
    std::optional<R> result;
    if (invoke) result.emplace(to_result<R>(res, self->buffer_));
    self->~HandlerOp();
    std::allocator_traits<Allocator>::deallocate(alloc, self, 1);
    if (!invoke) return;  // `handler` is destroyed unrun
    // Runs inline when we are already on the handler's executor (the normal case: the ring's
    // own drain or flush), otherwise posts there.
    boost::asio::dispatch(work, [h = std::move(handler), r = std::move(*result)]() mutable {
      std::move(h)(std::move(r));
    });
  }

  WorkExecutor work_;
  Handler handler_;
  ResultBuffer<R> buffer_;
};

}  // namespace sandfs::io::detail
