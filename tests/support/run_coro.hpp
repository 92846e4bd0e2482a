// run_coro: runs one asio::awaitable<T> to completion on a fresh io_context and returns its result.
//
//   Result<Entry> e = sandfs::test::run_coro(fs.lookup(ctx, 1, "a"));
//
// Exceptions escaping the coroutine are rethrown to the caller. Each call owns its io_context,
// so tests may call it from several threads at once. The awaitable must not outlive what it
// references; calling run_coro in the same full-expression that created it keeps that simple.
#pragma once

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

namespace sandfs::test {

namespace detail {

// co_spawn's value-returning form needs a default-constructible T; storing the value from inside
// the coroutine avoids that (Result<T> has no default).
template <class T>
boost::asio::awaitable<void> store_result(boost::asio::awaitable<T> task, std::optional<T>& out) {
  out.emplace(co_await std::move(task));
}

}  // namespace detail

template <class T>
T run_coro(boost::asio::awaitable<T> task) {
  boost::asio::io_context io;
  std::exception_ptr error;
  auto on_done = [&error](std::exception_ptr e) { error = e; };
  if constexpr (std::is_void_v<T>) {
    boost::asio::co_spawn(io, std::move(task), on_done);
    io.run();
    if (error) std::rethrow_exception(error);
  } else {
    std::optional<T> result;
    boost::asio::co_spawn(io, detail::store_result(std::move(task), result), on_done);
    io.run();
    if (error) std::rethrow_exception(error);
    if (!result) throw std::logic_error("run_coro: the coroutine did not complete");
    return std::move(*result);
  }
}

}  // namespace sandfs::test
