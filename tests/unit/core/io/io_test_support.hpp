// Shared bits of the io::Ring tests: a temp directory, a coroutine runner, mode names.
#pragma once

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "core/io/ring.hpp"

namespace sandfs::io::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/sandfs-io-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
    fd_ = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(fd_ >= 0);
  }
  ~TempDir() {
    ::close(fd_);
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  int fd_ = -1;
};

// Runs `aw` on `ctx` until the io_context runs out of work; rethrows what the coroutine threw.
template <class T>
T run_coro(boost::asio::io_context& ctx, boost::asio::awaitable<T> aw) {
  std::optional<T> result;
  std::exception_ptr error;
  boost::asio::co_spawn(
      ctx,
      [&, aw = std::move(aw)]() mutable -> boost::asio::awaitable<void> {
        result.emplace(co_await std::move(aw));
      },
      [&](std::exception_ptr e) { error = e; });
  ctx.restart();
  ctx.run();
  if (error) std::rethrow_exception(error);
  REQUIRE(result.has_value());
  return std::move(*result);
}

inline void run_coro(boost::asio::io_context& ctx, boost::asio::awaitable<void> aw) {
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(ctx, std::move(aw), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  ctx.restart();
  ctx.run();
  if (error) std::rethrow_exception(error);
  REQUIRE(done);
}

// The errno a Result carries, 0 for success.
template <class R>
int error_of(const R& r) {
  return r.ok() ? 0 : r.error();
}

inline const char* mode_name(Ring::Mode mode) {
  switch (mode) {
    case Ring::Mode::automatic:
      return "automatic";
    case Ring::Mode::io_uring:
      return "io_uring";
    case Ring::Mode::thread_pool:
      return "thread_pool";
  }
  return "?";
}

}  // namespace sandfs::io::test

// GCC 12 miscompiles a co_await inside Catch's assertion macros (the decomposed expression reads
// a dead temporary), so the result is awaited into a local first:
//   CHECK_ERRNO(co_await ring.close(fd), 0);  CHECK_ERRNO(co_await ring.mkdirat(...), EEXIST);
#define CHECK_ERRNO(expr, want)                                     \
  do {                                                              \
    const auto io_test_result_ = (expr);                            \
    INFO(#expr);                                                    \
    CHECK(::sandfs::io::test::error_of(io_test_result_) == (want)); \
  } while (false)
