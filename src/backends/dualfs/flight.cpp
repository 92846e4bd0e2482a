#include "backends/dualfs/flight.hpp"

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sandfs::dualfs {

namespace asio = boost::asio;

Task<Status> Flight::wait() {
  auto initiate = [this](auto handler) {
    std::unique_lock lock(mu_);
    if (done_) {
      const int e = error_;
      lock.unlock();
      auto ex = asio::get_associated_executor(handler);
      asio::post(ex, asio::append(std::move(handler), e));
      return;
    }
    asio::any_io_executor ex = asio::get_associated_executor(handler);
    waiters_.push_back(Waiter{std::move(ex), std::move(handler)});
  };
  const int e = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(int)>(
      initiate, asio::use_awaitable);
  if (e != 0) co_return Errno{e};
  co_return ok_status();
}

void Flight::finish(const Status& status) {
  std::vector<Waiter> waiters;
  int e = 0;
  {
    std::lock_guard lock(mu_);
    done_ = true;
    error_ = e = status.ok() ? 0 : status.error();
    waiters.swap(waiters_);
  }
  for (Waiter& w : waiters)
    asio::post(w.executor, asio::append(std::move(w.resume), e));
}

}  // namespace sandfs::dualfs
