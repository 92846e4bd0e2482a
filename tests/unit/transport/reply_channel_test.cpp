// FuseDevReplyChannel: one writev per reply, framed like the kernel expects, on a SEQPACKET
// socketpair standing in for /dev/fuse (it keeps message boundaries the same way).
#include "transport/fuse_dev/reply_channel.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "core/protocol/fuse_kernel.hpp"
#include "transport/fuse_dev/request_buffers.hpp"
#include "transport/fuse_dev/unique_fd.hpp"

using namespace sandfs;
using namespace sandfs::fuse_dev;

namespace {

struct Pair {
  UniqueFd server;
  UniqueFd kernel;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
    server.reset(fds[0]);
    kernel.reset(fds[1]);
  }
  std::vector<std::byte> receive() {
    std::vector<std::byte> buf(1 << 21);
    const ssize_t n = ::recv(kernel.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    REQUIRE(n >= 0);
    buf.resize(static_cast<size_t>(n));
    return buf;
  }
};

}  // namespace

TEST_CASE("send writes header and payload parts as one message", "[transport][channel]") {
  Pair p;
  RequestBuffers pool(8192);
  std::byte* request = pool.acquire();
  ReplyCounters counters;
  FuseDevReplyChannel ch(p.server.get(), request, pool.buffer_size(), counters);

  const std::string a = "hello ", b = "world";
  fuse::fuse_out_header h{};
  h.len = static_cast<uint32_t>(sizeof h + a.size() + b.size());
  h.error = 0;
  h.unique = 77;
  const iovec parts[3] = {{&h, sizeof h},
                          {const_cast<char*>(a.data()), a.size()},
                          {const_cast<char*>(b.data()), b.size()}};
  CHECK(ch.send(parts));

  const auto got = p.receive();
  REQUIRE(got.size() == h.len);
  fuse::fuse_out_header back{};
  std::memcpy(&back, got.data(), sizeof back);
  CHECK(back.unique == 77);
  CHECK(back.len == h.len);
  CHECK(std::string(reinterpret_cast<const char*>(got.data()) + sizeof h, got.size() - sizeof h) ==
        "hello world");
  CHECK(counters.sent.get() == 1);
  CHECK(counters.failed.get() == 0);
  pool.release(request);
}

TEST_CASE("payload_buffer lends the request buffer itself", "[transport][channel]") {
  Pair p;
  RequestBuffers pool(4096 + 4096);
  std::byte* request = pool.acquire();
  ReplyCounters counters;
  FuseDevReplyChannel ch(p.server.get(), request, pool.buffer_size(), counters);

  IoVecs v = ch.payload_buffer(4096);
  REQUIRE(v.size == 4096);
  REQUIRE(v.iov.size() == 1);
  CHECK(v.iov[0].iov_base == request);
  CHECK(v.iov[0].iov_len == 4096);

  // The whole buffer may be lent (a READ of max_write fits in max_write + 4096).
  CHECK(ch.payload_buffer(pool.buffer_size()).size == pool.buffer_size());
  // More than the buffer holds: an empty view, never memory beyond it.
  IoVecs none = ch.payload_buffer(pool.buffer_size() + 1);
  CHECK(none.size == 0);
  CHECK(none.iov.empty());

  // A READ-style reply built in the lent buffer goes out intact.
  v = ch.payload_buffer(100);
  std::memset(v.iov[0].iov_base, 'x', 100);
  fuse::fuse_out_header h{};
  h.len = sizeof h + 100;
  h.unique = 5;
  const iovec parts[2] = {{&h, sizeof h}, v.iov[0]};
  CHECK(ch.send(parts));
  const auto got = p.receive();
  REQUIRE(got.size() == sizeof h + 100);
  CHECK(static_cast<char>(got.back()) == 'x');
  pool.release(request);
}

TEST_CASE("a failed write is counted and reported", "[transport][channel]") {
  Pair p;
  RequestBuffers pool(8192);
  std::byte* request = pool.acquire();
  ReplyCounters counters;
  FuseDevReplyChannel ch(p.server.get(), request, pool.buffer_size(), counters);
  p.kernel.reset();  // the "kernel" went away: EPIPE (SIGPIPE is ignored below)

  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old {};
  ::sigaction(SIGPIPE, &ignore, &old);
  fuse::fuse_out_header h{};
  h.len = sizeof h;
  const iovec part{&h, sizeof h};
  CHECK_FALSE(ch.send(std::span<const iovec>(&part, 1)));
  ::sigaction(SIGPIPE, &old, nullptr);

  CHECK(counters.failed.get() == 1);
  CHECK(counters.sent.get() == 0);
  CHECK_FALSE(ch.send({}));  // nothing to send is a caller bug, not a crash
  pool.release(request);
}

TEST_CASE("backing registration on an fd that is not /dev/fuse fails cleanly",
          "[transport][channel][passthrough]") {
  // The real ioctls are exercised against the kernel in tests/integration
  // (kernel_passthrough_test.cpp); here: the errors a Session must be able to fall back on.
  Pair p;
  RequestBuffers pool(8192);
  std::byte* request = pool.acquire();
  ReplyCounters counters;
  FuseDevReplyChannel ch(p.server.get(), request, pool.buffer_size(), counters);
  CHECK(ch.supports_backing());
  UniqueFd file(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  REQUIRE(file);
  CHECK(ch.open_backing(file.get()) == -ENOTTY);
  CHECK(ch.close_backing(1) == -ENOTTY);
  CHECK(ch.close_backing(0) == -EINVAL);
  CHECK(counters.failed.get() == 0);
  pool.release(request);
}
