// The io_uring engine.
//
// Submission: start() writes the operation's SQE into the SQ and posts one flush handler per
// event-loop turn, so every operation started in that turn goes to the kernel in one
// io_uring_enter (64 coroutines reading: 1 enter per 64 reads). The flush reaps right after
// submitting: page-cache hits and most metadata calls complete inside io_uring_enter, and their
// handlers run in the same turn, with no eventfd round trip. If those handlers queued more, the
// flush goes round again, up to reap_budget completions.
//
// Completion: the ring signals an eventfd for every CQE it posts; an async_wait on that eventfd
// (on Asio's epoll reactor) reaps what completed later. The wait is armed only while the kernel
// holds operations, so an idle ring holds no work and io_context::run() can return. See Settle
// for why arming after reaping cannot lose a wakeup.
//
// Limits: at most cq_entries operations are in the ring at once, so the CQ can never overflow;
// the rest wait in user space (backlog_) in FIFO order. If the SQ is full, start() submits
// inline and retries.
//
// Handlers run inline (dispatch) from the flush/wakeup handlers, never from start(): posting
// them instead cost 45% more CPU per read at queue depth 1. A handler may start new operations
// (queued for the next round) or throw: Settle leaves the ring so the next run() carries on.
//
// Setup flags, measured on kernel 6.18: COOP_TASKRUN|SUBMIT_ALL vs none made no difference for
// page-cache reads. SINGLE_ISSUER makes submissions from any other thread fail with EEXIST
// (~Ring may run elsewhere), and with DEFER_TASKRUN the eventfd fires but the CQEs stay
// invisible until an io_uring_enter(GETEVENTS): a reaper that only peeks hangs. Neither is used.
#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

#include "core/io/backend.hpp"
#include "core/log.hpp"

namespace sandfs::io::detail {

namespace {

// COOP_TASKRUN: completions that need task work (poll-driven, async buffered reads) run at our
// next syscall instead of interrupting the thread with an IPI; works with eventfd notification
// and has no thread-affinity rule. SUBMIT_ALL: one bad SQE does not hold back the rest of a
// batch.
constexpr unsigned preferred_setup_flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;

// Most completions one flush or wakeup handler runs before yielding to the io_context's other
// handlers (a getattr in another mount must not wait behind a long chain of reads).
constexpr unsigned reap_budget = 128;

constexpr std::array<std::pair<OpCode, std::array<int, 2>>, 13> opcodes_needed{{
    {OpCode::preadv, {IORING_OP_READV, IORING_OP_READ}},
    {OpCode::pwritev, {IORING_OP_WRITEV, IORING_OP_WRITE}},
    {OpCode::fsync, {IORING_OP_FSYNC, IORING_OP_FSYNC}},
    {OpCode::fallocate, {IORING_OP_FALLOCATE, IORING_OP_FALLOCATE}},
    {OpCode::openat2, {IORING_OP_OPENAT2, IORING_OP_OPENAT2}},
    {OpCode::close, {IORING_OP_CLOSE, IORING_OP_CLOSE}},
    {OpCode::statx, {IORING_OP_STATX, IORING_OP_STATX}},
    {OpCode::unlinkat, {IORING_OP_UNLINKAT, IORING_OP_UNLINKAT}},
    {OpCode::renameat2, {IORING_OP_RENAMEAT, IORING_OP_RENAMEAT}},
    {OpCode::mkdirat, {IORING_OP_MKDIRAT, IORING_OP_MKDIRAT}},
    {OpCode::symlinkat, {IORING_OP_SYMLINKAT, IORING_OP_SYMLINKAT}},
    {OpCode::linkat, {IORING_OP_LINKAT, IORING_OP_LINKAT}},
    {OpCode::getxattr, {IORING_OP_GETXATTR, IORING_OP_GETXATTR}},
}};

void prep(io_uring_sqe* sqe, Call& c) {
  switch (c.code) {
    case OpCode::preadv:
      // One buffer: IORING_OP_READ skips importing an iovec array. Its length field is 32 bits.
      if (c.iov_count == 1 && c.iov[0].iov_len <= UINT_MAX) {
        io_uring_prep_read(sqe, c.fd, c.iov[0].iov_base, static_cast<unsigned>(c.iov[0].iov_len),
                           c.offset);
      } else {
        io_uring_prep_readv(sqe, c.fd, c.iov, c.iov_count, c.offset);
      }
      return;
    case OpCode::pwritev:
      if (c.iov_count == 1 && c.iov[0].iov_len <= UINT_MAX) {
        io_uring_prep_write(sqe, c.fd, c.iov[0].iov_base, static_cast<unsigned>(c.iov[0].iov_len),
                            c.offset);
      } else {
        io_uring_prep_writev(sqe, c.fd, c.iov, c.iov_count, c.offset);
      }
      return;
    case OpCode::fsync:
      io_uring_prep_fsync(sqe, c.fd, c.mode ? IORING_FSYNC_DATASYNC : 0);
      return;
    case OpCode::fallocate:
      io_uring_prep_fallocate(sqe, c.fd, static_cast<int>(c.mode), static_cast<off_t>(c.offset),
                              static_cast<off_t>(c.length));
      return;
    case OpCode::openat2:
      io_uring_prep_openat2(sqe, c.fd, c.path, &c.how);
      return;
    case OpCode::close:
      io_uring_prep_close(sqe, c.fd);
      return;
    case OpCode::statx:
      io_uring_prep_statx(sqe, c.fd, c.path, c.flags, c.mode, c.stx);
      return;
    case OpCode::unlinkat:
      io_uring_prep_unlinkat(sqe, c.fd, c.path, c.flags);
      return;
    case OpCode::renameat2:
      io_uring_prep_renameat(sqe, c.fd, c.path, c.fd2, c.path2, static_cast<unsigned>(c.flags));
      return;
    case OpCode::mkdirat:
      io_uring_prep_mkdirat(sqe, c.fd, c.path, static_cast<mode_t>(c.mode));
      return;
    case OpCode::symlinkat:
      io_uring_prep_symlinkat(sqe, c.path, c.fd, c.path2);
      return;
    case OpCode::linkat:
      io_uring_prep_linkat(sqe, c.fd, c.path, c.fd2, c.path2, c.flags);
      return;
    case OpCode::getxattr:
      io_uring_prep_getxattr(sqe, c.path2, static_cast<char*>(c.value), c.path,
                             static_cast<unsigned>(c.length));
      return;
    case OpCode::blocking:
      break;
  }
  io_uring_prep_nop(sqe);  // not reached: blocking calls go to the pool
}

class UringBackend final : public Backend, public std::enable_shared_from_this<UringBackend> {
 public:
  explicit UringBackend(boost::asio::io_context& ctx) : ctx_(ctx), pool_(ctx) {}

  ~UringBackend() override {
    if (ring_open_) io_uring_queue_exit(&ring_);
  }

  // 0, or the errno that makes io_uring unusable here.
  int init(unsigned entries) {
    io_uring_params params{};
    params.flags = preferred_setup_flags;
    int r = io_uring_queue_init_params(entries, &ring_, &params);
    if (r == -EINVAL) {  // a kernel older than the flags
      params = {};
      r = io_uring_queue_init_params(entries, &ring_, &params);
    }
    if (r < 0) return -r;
    ring_open_ = true;
    capacity_ = params.cq_entries;

    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
      for (const auto& [code, ops] : opcodes_needed) {
        supported_[static_cast<size_t>(code)] =
            io_uring_opcode_supported(probe, ops[0]) && io_uring_opcode_supported(probe, ops[1]);
      }
      io_uring_free_probe(probe);
    }

    const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) return errno;
    boost::system::error_code ec;
    wakeup_.emplace(ctx_);
    wakeup_->assign(efd, ec);
    if (ec) {
      ::close(efd);
      return ec.value();
    }
    r = io_uring_register_eventfd(&ring_, efd);
    if (r < 0) return -r;
    return 0;
  }

  bool uses_io_uring() const override { return true; }

  void start(Op* op) override {
    if (closed_) {
      post_result(ctx_, OpPtr(op), -ECANCELED);
      return;
    }
    if (op->call.code == OpCode::blocking || !supported_[static_cast<size_t>(op->call.code)]) {
      pool_.run(OpPtr(op));
      return;
    }
    if (!backlog_.empty() || !push(op)) {
      backlog_.push(op);
      ++stats_.backlogged;
    }
    schedule_flush();
  }

  void shutdown() override;

  void add_stats(Ring::Stats& stats) const override {
    stats.sqes += stats_.sqes;
    stats.enter_calls += stats_.enter_calls;
    stats.max_in_flight = std::max(stats.max_in_flight, stats_.max_in_flight);
    stats.backlogged += stats_.backlogged;
    stats.pool_jobs += pool_.jobs();
  }

 private:
  // Puts `op` into the SQ; false if the ring has no room for it now.
  bool push(Op* op) {
    if (in_flight_ >= capacity_) return false;  // its CQE might not fit
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      submit();
      sqe = io_uring_get_sqe(&ring_);
      if (!sqe) return false;
    }
    prep(sqe, op->call);
    io_uring_sqe_set_data(sqe, op);
    ++in_flight_;
    ++stats_.sqes;
    stats_.max_in_flight = std::max<uint64_t>(stats_.max_in_flight, in_flight_);
    return true;
  }

  void refill() {
    while (!backlog_.empty() && push(backlog_.front()))
      backlog_.pop();
  }

  // Hands the queued SQEs to the kernel. Returns false on a transient failure (retry later).
  bool submit() {
    if (io_uring_sq_ready(&ring_) == 0) return true;
    const int r = io_uring_submit(&ring_);
    ++stats_.enter_calls;
    if (r >= 0 || r == -EINTR || r == -EAGAIN || r == -EBUSY) return r >= 0;
    // Not expected from a healthy ring (EBADF, EFAULT, ...). The SQEs stay queued and go with
    // the next flush; say so once rather than once per turn.
    if (!submit_error_logged_) {
      submit_error_logged_ = true;
      SANDFS_LOG(error) << "io::Ring: io_uring_enter failed: " << std::strerror(-r);
    }
    return true;
  }

  void schedule_flush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    boost::asio::post(ctx_, [self = shared_from_this()] { self->on_flush(); });
  }

  void on_flush() {
    flush_posted_ = false;
    if (closed_) return;
    Settle settle{*this};
    // Submit, reap what completed inline, and go round again while the handlers just run queued
    // more: a coroutine doing back-to-back cached reads then costs one io_uring_enter per read
    // and no trip through the event loop, while many coroutines still share one enter per round.
    unsigned budget = reap_budget;
    while (budget > 0) {
      refill();
      if (!submit()) return;  // transient: settle() posts a retry
      const unsigned reaped = reap(budget);
      budget -= std::min(budget, reaped);
      if (reaped == 0 || io_uring_sq_ready(&ring_) == 0) return;
    }
  }

  void arm_wakeup() {
    if (wakeup_armed_) return;
    wakeup_armed_ = true;
    wakeup_->async_wait(
        boost::asio::posix::stream_descriptor::wait_read,
        [self = shared_from_this()](const boost::system::error_code& ec) { self->on_wakeup(ec); });
  }

  void on_wakeup(const boost::system::error_code& ec) {
    wakeup_armed_ = false;
    if (closed_ || ec == boost::asio::error::operation_aborted) return;
    Settle settle{*this};
    uint64_t count;
    [[maybe_unused]] const ssize_t n = ::read(wakeup_->native_handle(), &count, sizeof count);
    reap(reap_budget);
  }

  // Completes up to `limit` operations whose CQEs are ready; returns how many it completed.
  unsigned reap(unsigned limit) {
    unsigned done = 0;
    io_uring_cqe* cqe = nullptr;
    while (done < limit && io_uring_peek_cqe(&ring_, &cqe) == 0) {
      auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
      const long res = cqe->res;
      io_uring_cqe_seen(&ring_, cqe);
      if (!op) continue;  // a cancel request's own CQE
      --in_flight_;
      ++done;
      refill();
      op->complete(res);  // may start operations; may throw
    }
    return done;
  }

  // Run at the end of every flush and wakeup, also when a handler threw: makes sure whatever is
  // queued or completed gets another turn, and that the eventfd is watched while the kernel has
  // operations. Arming here, after reaping, cannot lose a wakeup: a CQE posted since the last
  // peek has signalled the eventfd, and epoll (edge-triggered in Asio's reactor) reports that
  // at its next epoll_wait, which comes after this handler returns, when the wait is armed.
  struct Settle {
    UringBackend& self;
    ~Settle() {
      if (self.closed_) return;
      const unsigned queued = io_uring_sq_ready(&self.ring_);
      const bool room = !self.backlog_.empty() && self.in_flight_ < self.capacity_;
      if (io_uring_cq_ready(&self.ring_) > 0 || queued > 0 || room) self.schedule_flush();
      if (self.in_flight_ > queued) self.arm_wakeup();  // queued ones get the flush, which reaps
    }
  };

  void destroy_completed();

  boost::asio::io_context& ctx_;
  io_uring ring_{};
  bool ring_open_ = false;
  std::optional<boost::asio::posix::stream_descriptor> wakeup_;
  PoolClient pool_;
  OpQueue backlog_;
  unsigned capacity_ = 0;   // CQ entries: the most operations in the ring at once
  unsigned in_flight_ = 0;  // operations in the SQ or the kernel, CQE not yet reaped
  std::array<bool, static_cast<size_t>(OpCode::blocking) + 1> supported_{};
  bool flush_posted_ = false;
  bool wakeup_armed_ = false;
  bool closed_ = false;
  bool submit_error_logged_ = false;
  Ring::Stats stats_;
};

void UringBackend::shutdown() {
  if (closed_) return;
  closed_ = true;  // handlers already posted see it and return; start() now answers ECANCELED

  // Never reached the kernel: just destroy them.
  while (Op* op = backlog_.pop())
    op->destroy();

  if (in_flight_ > 0) {
    // Ask the kernel to cancel everything (a read on a pipe would otherwise wait forever),
    // then collect every CQE: until then the kernel may still write into the ops' buffers.
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (!sqe) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe) {
      io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data(sqe, nullptr);
    }
    io_uring_submit(&ring_);
    const auto deadline = std::chrono::steady_clock::now() + shutdown_wait;
    while (in_flight_ > 0) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      const auto slice = std::min<std::chrono::nanoseconds>(left, std::chrono::milliseconds(100));
      __kernel_timespec ts{.tv_sec = 0, .tv_nsec = slice.count()};
      io_uring_cqe* cqe = nullptr;
      const int r = io_uring_wait_cqe_timeout(&ring_, &cqe, &ts);
      if (r == -ETIME || r == -EINTR) continue;
      if (r < 0) {
        SANDFS_LOG(error) << "io::Ring: waiting for completions at shutdown failed: "
                          << std::strerror(-r);
        break;
      }
      destroy_completed();
    }
    if (in_flight_ > 0) {
      // Their buffers may still be written by the kernel: leak the ops rather than free them.
      SANDFS_LOG(error) << "io::Ring: " << in_flight_ << " io_uring operations still running after "
                        << shutdown_wait.count() << " s at shutdown; their state is leaked";
    }
  }

  io_uring_queue_exit(&ring_);
  ring_open_ = false;
  wakeup_.reset();  // aborts a pending wait; its handler sees closed_
  pool_.shutdown();
}

void UringBackend::destroy_completed() {
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
    io_uring_cqe_seen(&ring_, cqe);
    if (!op) continue;
    --in_flight_;
    op->destroy();
  }
}

}  // namespace

std::shared_ptr<Backend> make_uring_backend(boost::asio::io_context& ctx, unsigned entries,
                                            int& error) {
  auto backend = std::make_shared<UringBackend>(ctx);
  error = backend->init(entries);
  if (error != 0) return nullptr;
  return backend;
}

}  // namespace sandfs::io::detail
