// The two engines behind io::Ring (private to src/core/io).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/io/op.hpp"
#include "core/io/ring.hpp"

namespace sandfs::io::detail {

// How long ~Ring waits for operations the kernel or the pool are still working on.
inline constexpr std::chrono::seconds shutdown_wait{5};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual bool uses_io_uring() const = 0;
  // Takes ownership of `op` and completes it later, on the io_context, never inline.
  virtual void start(Op* op) = 0;
  // Called once, by ~Ring: ends every operation (handlers destroyed unrun), see ring.hpp.
  virtual void shutdown() = 0;
  virtual void add_stats(Ring::Stats& stats) const = 0;
};

// Creates the io_uring backend; null with `error` set (a positive errno) if the kernel refuses.
std::shared_ptr<Backend> make_uring_backend(boost::asio::io_context& ctx, unsigned entries,
                                            int& error);
std::shared_ptr<Backend> make_thread_pool_backend(boost::asio::io_context& ctx);

// Runs `call` as the plain syscall on the calling thread: the result, or -errno.
long run_syscall(Call& call);

// Completes `op` with `res` from a handler posted to `ctx` (so never inside the initiating call).
void post_result(boost::asio::io_context& ctx, OpPtr op, long res);

// Runs operations on the process-wide blocking pool and delivers their results to one
// io_context. Used by both backends (the io_uring one for run_blocking only).
class PoolClient {
 public:
  explicit PoolClient(boost::asio::io_context& ctx);
  ~PoolClient();
  PoolClient(const PoolClient&) = delete;
  PoolClient& operator=(const PoolClient&) = delete;

  void run(OpPtr op);
  // Waits (at most shutdown_wait) for this client's jobs, then detaches from the io_context:
  // a job that finishes later leaks its op instead of touching the io_context.
  void shutdown();
  uint64_t jobs() const { return jobs_; }

 private:
  struct Link;
  std::shared_ptr<Link> link_;
  uint64_t jobs_ = 0;
};

// A FIFO of ops linked through Op::next.
class OpQueue {
 public:
  bool empty() const { return head_ == nullptr; }
  Op* front() const { return head_; }
  void push(Op* op) {
    op->next = nullptr;
    (tail_ ? tail_->next : head_) = op;
    tail_ = op;
  }
  Op* pop() {
    Op* op = head_;
    if (op) {
      head_ = op->next;
      if (!head_) tail_ = nullptr;
      op->next = nullptr;
    }
    return op;
  }

 private:
  Op* head_ = nullptr;
  Op* tail_ = nullptr;
};

}  // namespace sandfs::io::detail
