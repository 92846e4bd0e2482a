#include "transport/fuse_dev/fuse_dev_server.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <latch>
#include <optional>
#include <system_error>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "transport/fuse_dev/reply_channel.hpp"
#include "transport/fuse_dev/request_buffers.hpp"

namespace sandfs::fuse_dev {

namespace asio = boost::asio;

const char* to_string(FuseDevServer::StopReason reason) {
  switch (reason) {
    case FuseDevServer::StopReason::running:
      return "running";
    case FuseDevServer::StopReason::unmounted:
      return "unmounted";
    case FuseDevServer::StopReason::destroyed:
      return "destroyed";
    case FuseDevServer::StopReason::requested:
      return "stop requested";
    case FuseDevServer::StopReason::aborted:
      return "connection aborted";
    case FuseDevServer::StopReason::failed:
      return "failed";
  }
  return "?";
}

namespace {

// A second fd on the connection behind `fd`: the kernel hands each request to exactly one reader,
// and a reply must go back on the fd its request was read from.
UniqueFd clone_fuse_fd(const std::string& device_path, int fd) {
  UniqueFd clone(::open(device_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!clone) {
    throw std::system_error(errno, std::generic_category(), "open " + device_path);
  }
  uint32_t source = static_cast<uint32_t>(fd);
  if (::ioctl(clone.get(), fuse::FUSE_DEV_IOC_CLONE, &source) != 0) {
    throw std::system_error(errno, std::generic_category(), "ioctl(FUSE_DEV_IOC_CLONE)");
  }
  return clone;
}

}  // namespace

// One server thread: its io_context, io ring, /dev/fuse fd, reader and request handlers.
// Everything except context(), cancel_reader() (posted) and the counters is touched only on the
// worker's own thread.
class FuseDevServer::Worker {
 public:
  Worker(FuseDevServer& server, unsigned index, UniqueFd fd)
      : server_(server),
        index_(index),
        fd_(std::move(fd)),
        ctx_(1),
        work_(asio::make_work_guard(ctx_)),
        buffers_(server.session_.request_buffer_size(), server.options_.max_free_buffers) {}

  ~Worker() { join(); }

  asio::io_context& context() { return ctx_; }

  void launch(std::latch& ready) {
    thread_ = std::thread([this, &ready] { thread_main(ready); });
  }

  // After every launched worker reported ready: begin reading (or give up when setup failed).
  // The work guard stays: a context must not run out of work and return while another thread
  // may still post to it (thread 0 waits for the others' reports). Every thread ends with an
  // explicit stop() instead.
  void begin() { asio::co_spawn(ctx_, read_loop(), asio::detached); }
  void abandon() {
    work_.reset();
    ctx_.stop();
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Thread-safe: the reader's pending read completes with operation_aborted.
  void cancel_reader() {
    asio::post(ctx_, [this] {
      if (stream_) {
        boost::system::error_code ignored;
        stream_->cancel(ignored);
      }
    });
  }

  bool uses_io_uring() const { return uses_io_uring_; }
  const std::exception_ptr& setup_error() const { return setup_error_; }

  void add_counters(Counters& c) const {
    c.requests += requests_.get();
    c.replies += replies_.sent.get();
    c.replies_interrupted += replies_.interrupted.get();
    c.replies_failed += replies_.failed.get();
    c.buffer_allocations += buffers_.allocations();
  }

 private:
  void thread_main(std::latch& ready) {
    std::optional<io::Ring> ring;
    try {
      ring.emplace(ctx_, server_.options_.ring_entries, server_.options_.ring_mode);
      stream_.emplace(ctx_, fd_.get());
      fd_.release();
      uses_io_uring_ = ring->uses_io_uring();
    } catch (...) {
      setup_error_ = std::current_exception();
      ready.count_down();
      return;
    }
    io::Ring::Scope scope(*ring);
    ready.count_down();  // `ready` is gone after this
    for (;;) {
      try {
        ctx_.run();
        break;
      } catch (const std::exception& e) {
        SANDFS_LOG(error) << "fuse thread " << index_ << ": unexpected exception: " << e.what();
      }
    }
    // Close the fd while the ring it may have been used with still exists.
    stream_.reset();
  }

  Task<void> read_loop() {
    const size_t size = buffers_.buffer_size();
    while (!server_.stopping()) {
      std::byte* buffer = buffers_.acquire();
      auto [ec, n] = co_await stream_->async_read_some(asio::buffer(buffer, size),
                                                       asio::as_tuple(asio::use_awaitable));
      if (!ec) {
        requests_.add();
        ++in_flight_;
        asio::co_spawn(ctx_, serve(buffer, n), asio::detached);
        continue;
      }
      buffers_.release(buffer);
      if (ec == asio::error::operation_aborted) break;  // stop() cancelled the read
      const int e = ec.category() == boost::system::system_category() ? ec.value() : 0;
      if (e == EINTR || e == EAGAIN || e == ENOENT) {
        // ENOENT: the request was aborted between poll and read; the next one is fine.
        continue;
      }
      if (e == ENODEV) {
        // Unmounted (umount, fusermount3 -u, or our own signal handler): the normal end.
        SANDFS_LOG(debug) << "fuse thread " << index_ << ": /dev/fuse closed by the kernel";
        server_.request_stop(StopReason::unmounted);
        break;
      }
      if (e == ECONNABORTED) {
        // FUSE_ABORT_ERROR makes an aborted connection read as ECONNABORTED, not ENODEV.
        SANDFS_LOG(warn) << "fuse thread " << index_ << ": the kernel aborted the connection";
        server_.request_stop(StopReason::aborted);
        break;
      }
      SANDFS_LOG(error) << "fuse thread " << index_
                        << ": read from /dev/fuse failed: " << ec.message();
      server_.request_stop(StopReason::failed);
      break;
    }
    reader_done_ = true;
    maybe_finished();
  }

  Task<void> serve(std::byte* buffer, size_t size) {
    {
      FuseDevReplyChannel channel(stream_->native_handle(), buffer, buffers_.buffer_size(),
                                  replies_);
      try {
        co_await server_.session_.handle(std::span<const std::byte>(buffer, size), channel);
      } catch (const std::exception& e) {
        // handle() promises not to throw; keep the buffer accounting right if it does.
        SANDFS_LOG(error) << "fuse thread " << index_ << ": request handler threw: " << e.what();
      }
    }
    buffers_.release(buffer);
    --in_flight_;
    if (server_.session_.destroyed()) server_.request_stop(StopReason::destroyed);
    maybe_finished();
  }

  // Reports to thread 0 once the reader has stopped and every request has replied.
  void maybe_finished() {
    if (!reader_done_ || in_flight_ != 0 || finished_) return;
    finished_ = true;
    if (index_ == 0) {
      server_.worker_finished();
    } else {
      FuseDevServer* server = &server_;
      asio::post(server_.workers_[0]->context(), [server] { server->worker_finished(); });
      ctx_.stop();
    }
  }

  FuseDevServer& server_;
  const unsigned index_;
  UniqueFd fd_;  // until stream_ owns it
  asio::io_context ctx_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::optional<asio::posix::stream_descriptor> stream_;
  RequestBuffers buffers_;
  ReplyCounters replies_;
  ThreadCounter requests_;
  size_t in_flight_ = 0;
  bool reader_done_ = false;
  bool finished_ = false;
  bool uses_io_uring_ = false;
  std::exception_ptr setup_error_;
  std::thread thread_;
};

FuseDevServer::FuseDevServer(Session& session, UniqueFd mount_fd, unsigned threads)
    : FuseDevServer(session, std::move(mount_fd), FuseDevServerOptions{.threads = threads}) {}

FuseDevServer::FuseDevServer(Session& session, UniqueFd mount_fd, FuseDevServerOptions options)
    : session_(session), options_(std::move(options)), mount_fd_(std::move(mount_fd)) {
  if (options_.threads == 0) options_.threads = 1;
}

FuseDevServer::~FuseDevServer() {
  stop();
  wait();
}

void FuseDevServer::start() {
  if (started_) return;
  started_ = true;
  if (!mount_fd_) throw std::system_error(EBADF, std::generic_category(), "no /dev/fuse fd");

  // Clone first, on this thread, so a failure leaves nothing running.
  std::vector<UniqueFd> fds;
  fds.reserve(options_.threads);
  for (unsigned i = 1; i < options_.threads; ++i) {
    try {
      fds.push_back(options_.clone_fd ? options_.clone_fd(mount_fd_.get())
                                      : clone_fuse_fd(options_.device_path, mount_fd_.get()));
    } catch (const std::system_error& e) {
      // An unprivileged user whose fd came from fusermount3 may not be allowed to open
      // /dev/fuse itself (mode 0600): serve with the threads we have rather than not at all.
      const int code = e.code().value();
      if (code != EACCES && code != EPERM) throw;
      SANDFS_LOG(warn) << "cannot clone the /dev/fuse fd (" << e.what() << "): serving with " << i
                       << (i == 1 ? " thread" : " threads") << " instead of " << options_.threads;
      options_.threads = i;
      break;
    }
    if (!fds.back()) throw std::system_error(EBADF, std::generic_category(), "clone_fd");
  }
  fds.insert(fds.begin(), std::move(mount_fd_));

  workers_.reserve(options_.threads);
  for (unsigned i = 0; i < options_.threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i, std::move(fds[i])));
  }
  unfinished_ = options_.threads;

  std::latch ready(static_cast<std::ptrdiff_t>(workers_.size()));
  size_t launched = 0;
  std::exception_ptr error;
  try {
    for (auto& w : workers_) {
      w->launch(ready);
      ++launched;
    }
  } catch (...) {
    error = std::current_exception();
    ready.count_down(static_cast<std::ptrdiff_t>(workers_.size() - launched));
  }
  ready.wait();
  for (auto& w : workers_) {
    if (!error && w->setup_error()) error = w->setup_error();
  }
  if (error) {
    for (auto& w : workers_)
      w->abandon();
    for (auto& w : workers_)
      w->join();
    workers_.clear();
    joined_ = true;
    std::rethrow_exception(error);
  }

  uses_io_uring_ = true;
  for (auto& w : workers_)
    uses_io_uring_ = uses_io_uring_ && w->uses_io_uring();
  for (auto& w : workers_)
    w->begin();
  SANDFS_LOG(debug) << "serving /dev/fuse with " << workers_.size() << " threads";
  // A stop() that raced with start() found no workers to cancel; the readers check stopping()
  // before each read, so they still stop.
}

void FuseDevServer::request_stop(StopReason reason) {
  StopReason expected = StopReason::running;
  reason_.compare_exchange_strong(expected, reason, std::memory_order_acq_rel);
  if (stopping_.exchange(true, std::memory_order_acq_rel)) return;
  for (auto& w : workers_)
    w->cancel_reader();
}

void FuseDevServer::worker_finished() {
  if (--unfinished_ > 0) return;
  // Every thread has drained: tell the filesystem, then let thread 0 exit too.
  asio::co_spawn(
      workers_[0]->context(),
      [this]() -> Task<void> {
        try {
          co_await session_.shutdown();
        } catch (const std::exception& e) {
          SANDFS_LOG(error) << "session shutdown failed: " << e.what();
        }
        SANDFS_LOG(debug) << "fuse server stopped: " << to_string(stop_reason());
        if (on_finished_) on_finished_();
        workers_[0]->context().stop();
      },
      asio::detached);
}

void FuseDevServer::wait() {
  if (joined_) return;
  for (auto& w : workers_)
    w->join();
  joined_ = true;
}

FuseDevServer::Counters FuseDevServer::counters() const {
  Counters c;
  for (const auto& w : workers_)
    w->add_counters(c);
  return c;
}

}  // namespace sandfs::fuse_dev
