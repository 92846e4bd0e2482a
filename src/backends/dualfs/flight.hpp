// Flight: one asynchronous operation that several coroutines may wait for.
//
// Copy-up and directory promotion must happen once per node however many requests trigger them
// at the same moment. The first request starts a Flight on the node (InodeTable::claim_flight),
// does the work and finish()es it; the others co_await wait() and then look at the node again.
// Waiters are resumed through their own executors, so a waiter on another thread's io_context
// is resumed there; nothing blocks while the flight runs.
#pragma once

#include <mutex>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include "core/filesystem.hpp"

namespace sandfs::dualfs {

class Flight {
 public:
  // Completes when finish() has been called (at once if it has been); returns its status.
  Task<Status> wait();
  void finish(const Status& status);

 private:
  std::mutex mu_;
  bool done_ = false;
  int error_ = 0;
  struct Waiter {
    boost::asio::any_io_executor executor;  // where the waiting coroutine runs
    boost::asio::any_completion_handler<void(int)> resume;
  };
  std::vector<Waiter> waiters_;
};

}  // namespace sandfs::dualfs
