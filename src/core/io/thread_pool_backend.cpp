// The thread-pool engine: each operation runs as the plain syscall on a small process-wide pool
// and its result is posted back to the ring's io_context. Used where io_uring is unavailable, and
// by every ring for run_blocking().
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <new>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "core/io/backend.hpp"
#include "core/log.hpp"

namespace sandfs::io::detail {

namespace {

boost::asio::thread_pool& blocking_pool() {
  // Created on first use and never destroyed: a job stuck in a syscall at exit must not turn
  // into a hang in a static destructor's join().
  static auto* pool =
      new boost::asio::thread_pool(std::clamp(std::thread::hardware_concurrency(), 2u, 4u));
  return *pool;
}

long call_blocking(Call& call) {
  try {
    return call.fn();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  } catch (...) {
    // The contract says fn does not throw; an exception here must not kill a pool thread.
    SANDFS_LOG(error) << "io::Ring::run_blocking: the function threw; answering EIO";
    return -EIO;
  }
}

}  // namespace

long run_syscall(Call& c) {
  long r = -1;
  switch (c.code) {
    case OpCode::preadv:
      r = c.iov_count == 1
              ? ::pread(c.fd, c.iov[0].iov_base, c.iov[0].iov_len, static_cast<off_t>(c.offset))
              : ::preadv(c.fd, c.iov, static_cast<int>(c.iov_count), static_cast<off_t>(c.offset));
      break;
    case OpCode::pwritev:
      r = c.iov_count == 1
              ? ::pwrite(c.fd, c.iov[0].iov_base, c.iov[0].iov_len, static_cast<off_t>(c.offset))
              : ::pwritev(c.fd, c.iov, static_cast<int>(c.iov_count), static_cast<off_t>(c.offset));
      break;
    case OpCode::fsync:
      r = c.mode ? ::fdatasync(c.fd) : ::fsync(c.fd);
      break;
    case OpCode::fallocate:
      r = ::fallocate(c.fd, static_cast<int>(c.mode), static_cast<off_t>(c.offset),
                      static_cast<off_t>(c.length));
      break;
    case OpCode::openat2:
      // glibc 2.36 has no wrapper.
      r = ::syscall(SYS_openat2, c.fd, c.path, &c.how, sizeof c.how);
      break;
    case OpCode::close:
      r = ::close(c.fd);
      break;
    case OpCode::statx:
      r = ::statx(c.fd, c.path, c.flags, c.mode, c.stx);
      break;
    case OpCode::unlinkat:
      r = ::unlinkat(c.fd, c.path, c.flags);
      break;
    case OpCode::renameat2:
      r = ::renameat2(c.fd, c.path, c.fd2, c.path2, static_cast<unsigned>(c.flags));
      break;
    case OpCode::mkdirat:
      r = ::mkdirat(c.fd, c.path, static_cast<mode_t>(c.mode));
      break;
    case OpCode::symlinkat:
      r = ::symlinkat(c.path, c.fd, c.path2);
      break;
    case OpCode::linkat:
      r = ::linkat(c.fd, c.path, c.fd2, c.path2, c.flags);
      break;
    case OpCode::getxattr:
      r = ::getxattr(c.path, c.path2, c.value, c.length);
      break;
    case OpCode::blocking:
      return call_blocking(c);
  }
  return r < 0 ? -errno : r;
}

void post_result(boost::asio::io_context& ctx, OpPtr op, long res) {
  boost::asio::post(ctx, [op = std::move(op), res]() mutable { op.release()->complete(res); });
}

struct PoolClient::Link {
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

  std::mutex mutex;
  std::condition_variable idle;
  boost::asio::io_context* ctx;  // null once the ring is gone
  unsigned outstanding = 0;
  // Held while jobs are out: results come back through ctx even when the handler's executor
  // is elsewhere, so ctx must not run out of work in between.
  std::optional<WorkGuard> work;

  explicit Link(boost::asio::io_context& c) : ctx(&c) {}

  void add() {
    std::lock_guard lock(mutex);
    if (outstanding++ == 0 && ctx) work.emplace(ctx->get_executor());
  }

  void remove_locked() {
    if (--outstanding == 0) work.reset();
    idle.notify_all();
  }

  void deliver(OpPtr op, long res) {
    std::lock_guard lock(mutex);
    if (ctx) {
      // If the io_context is destroyed before this runs, the lambda's OpPtr destroys the op
      // there, like any other handler the io_context never ran.
      post_result(*ctx, std::move(op), res);
    } else {
      // The ring waited shutdown_wait for us and gave up; its io_context may be gone. Running
      // the handler's destructors here could race with that thread, so leak the op.
      (void)op.release();
    }
    remove_locked();
  }
};

PoolClient::PoolClient(boost::asio::io_context& ctx) : link_(std::make_shared<Link>(ctx)) {}

PoolClient::~PoolClient() = default;

void PoolClient::run(OpPtr op) {
  link_->add();
  try {
    boost::asio::post(blocking_pool(), [link = link_, op = std::move(op)]() mutable {
      const long res = run_syscall(op->call);
      link->deliver(std::move(op), res);
    });
  } catch (...) {
    std::lock_guard lock(link_->mutex);
    link_->remove_locked();
    throw;
  }
  ++jobs_;
}

void PoolClient::shutdown() {
  std::unique_lock lock(link_->mutex);
  if (!link_->idle.wait_for(lock, shutdown_wait, [&] { return link_->outstanding == 0; })) {
    SANDFS_LOG(error) << "io::Ring: " << link_->outstanding
                      << " blocking-pool operations still running after " << shutdown_wait.count()
                      << " s at shutdown; their state is leaked";
  }
  link_->ctx = nullptr;
  link_->work.reset();
}

namespace {

class ThreadPoolBackend final : public Backend {
 public:
  explicit ThreadPoolBackend(boost::asio::io_context& ctx) : ctx_(ctx), pool_(ctx) {}

  bool uses_io_uring() const override { return false; }

  void start(Op* op) override {
    if (closed_) {
      post_result(ctx_, OpPtr(op), -ECANCELED);
      return;
    }
    pool_.run(OpPtr(op));
  }

  void shutdown() override {
    closed_ = true;
    pool_.shutdown();
  }

  void add_stats(Ring::Stats& stats) const override { stats.pool_jobs += pool_.jobs(); }

 private:
  boost::asio::io_context& ctx_;
  PoolClient pool_;
  bool closed_ = false;
};

}  // namespace

std::shared_ptr<Backend> make_thread_pool_backend(boost::asio::io_context& ctx) {
  return std::make_shared<ThreadPoolBackend>(ctx);
}

}  // namespace sandfs::io::detail
