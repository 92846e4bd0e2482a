// RingRunner: runs coroutines that do host I/O, on an io_context with an io::Ring installed.
//
//   Result<Entry> e = sandfs::test::run_io(fs.lookup(ctx, 1, "a"));
//
// Each thread gets its own runner (io_context + ring), created on first use, as the server does:
// a Ring may only be used from the thread that runs its io_context. run_io() installs the ring
// (io::Ring::Scope), runs the io_context until the coroutine and everything it spawned are done,
// and rethrows what the coroutine threw.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "core/io/ring.hpp"
#include "support/run_coro.hpp"

namespace sandfs::test {

class RingRunner {
 public:
  explicit RingRunner(io::Ring::Mode mode = io::Ring::Mode::automatic) : ring_(io_, 256, mode) {}
  RingRunner(const RingRunner&) = delete;
  RingRunner& operator=(const RingRunner&) = delete;

  template <class T>
  T run(boost::asio::awaitable<T> task) {
    io::Ring::Scope scope(ring_);
    std::exception_ptr error;
    auto on_done = [&error](std::exception_ptr e) { error = e; };
    io_.restart();
    if constexpr (std::is_void_v<T>) {
      boost::asio::co_spawn(io_, std::move(task), on_done);
      io_.run();
      if (error) std::rethrow_exception(error);
    } else {
      std::optional<T> result;
      boost::asio::co_spawn(io_, detail::store_result(std::move(task), result), on_done);
      io_.run();
      if (error) std::rethrow_exception(error);
      if (!result) throw std::logic_error("RingRunner: the coroutine did not complete");
      return std::move(*result);
    }
  }

  io::Ring& ring() { return ring_; }
  boost::asio::io_context& context() { return io_; }

 private:
  boost::asio::io_context io_;  // declared first: the ring must go before its io_context
  io::Ring ring_;
};

inline RingRunner& thread_runner() {
  thread_local RingRunner runner;
  return runner;
}

template <class T>
T run_io(boost::asio::awaitable<T> task) {
  return thread_runner().run(std::move(task));
}

}  // namespace sandfs::test
