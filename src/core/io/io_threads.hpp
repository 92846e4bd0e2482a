// IoThreads: N threads, each running its own io_context with its own io::Ring installed.
//
// For servers whose work arrives from several sources at once (vhost-user: many connections,
// each with several virtqueues): a source is pinned to one thread (pick()) and everything it
// spawns stays there, so per-source state needs no locks. The contexts keep running until
// stop(); destruction stops and joins.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "core/io/ring.hpp"

namespace sandfs::io {

class IoThreads {
 public:
  // Starts `count` (>= 1) threads. Throws std::system_error when a thread cannot start.
  explicit IoThreads(unsigned count, Ring::Mode mode = Ring::Mode::automatic,
                     unsigned ring_entries = 256);
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  unsigned size() const { return static_cast<unsigned>(threads_.size()); }
  boost::asio::io_context& context(unsigned i) { return threads_[i]->ctx; }
  // Round-robin choice of a thread for a new source of work.
  boost::asio::io_context& pick();
  // Whether every ring uses io_uring (false: at least one fell back to the thread pool).
  bool uses_io_uring() const;

  // Lets the contexts run out of work, stops them and joins the threads. Idempotent.
  void stop();

 private:
  struct Thread {
    boost::asio::io_context ctx{1};
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
    std::thread thread;
    std::atomic<bool> io_uring{false};
  };
  std::vector<std::unique_ptr<Thread>> threads_;
  std::atomic<unsigned> next_{0};
};

}  // namespace sandfs::io
