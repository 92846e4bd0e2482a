// FuseDevServer driven without a kernel: SEQPACKET socketpairs stand in for /dev/fuse (one
// message per read, one reply per writev, just like the device), and the clone_fd option hands
// each extra thread its own pair instead of a FUSE_DEV_IOC_CLONE fd.
#include "transport/fuse_dev/fuse_dev_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "core/protocol/fuse_kernel.hpp"
#include "core/session.hpp"

namespace asio = boost::asio;
using namespace sandfs;
using namespace sandfs::fuse;
using namespace sandfs::fuse_dev;
using namespace std::chrono_literals;

namespace {

constexpr InodeId slow_ino = 2;

class FakeFs : public Filesystem {
 public:
  std::atomic<int> destroys{0};
  std::atomic<int> slow_done{0};
  std::atomic<bool> slow_done_before_destroy{false};

  Task<Result<AttrReply>> getattr(const RequestContext&, InodeId ino,
                                  std::optional<HandleId>) override {
    if (ino == slow_ino) {
      asio::steady_timer t(co_await asio::this_coro::executor);
      t.expires_after(300ms);
      co_await t.async_wait(asio::use_awaitable);
      ++slow_done;
    }
    AttrReply r;
    r.attr.ino = ino;
    r.attr.mode = S_IFDIR | 0755;
    r.attr.nlink = 2;
    co_return r;
  }
  Task<void> destroy() override {
    slow_done_before_destroy = slow_done.load() > 0;
    ++destroys;
    co_return;
  }
};

// The "kernel" end of one server fd.
struct KernelEnd {
  UniqueFd kernel;
  UniqueFd server;  // handed to the FuseDevServer
  KernelEnd() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0);
    kernel.reset(fds[0]);
    server.reset(fds[1]);
  }

  template <class Arg>
  void send(uint32_t opcode, uint64_t nodeid, uint64_t unique, const Arg& arg) {
    send_raw(opcode, nodeid, unique, &arg, sizeof arg);
  }
  void send_raw(uint32_t opcode, uint64_t nodeid, uint64_t unique, const void* arg,
                size_t arg_size) {
    std::vector<std::byte> msg(sizeof(fuse_in_header) + arg_size);
    fuse_in_header h{};
    h.len = static_cast<uint32_t>(msg.size());
    h.opcode = opcode;
    h.nodeid = nodeid;
    h.unique = unique;
    std::memcpy(msg.data(), &h, sizeof h);
    if (arg_size) std::memcpy(msg.data() + sizeof h, arg, arg_size);
    REQUIRE(::send(kernel.get(), msg.data(), msg.size(), 0) == static_cast<ssize_t>(msg.size()));
  }
  void send_init(uint64_t unique = 1) {
    fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.max_readahead = 131072;
    in.flags = 0x73fffffb;
    in.flags2 = 0x5fd;
    send(FUSE_INIT, 0, unique, in);
  }
  void send_getattr(uint64_t nodeid, uint64_t unique) {
    send(FUSE_GETATTR, nodeid, unique, fuse_getattr_in{});
  }

  // The next reply's header (waits up to 5 s); the body must be `body_size` bytes.
  fuse_out_header receive(size_t body_size) {
    pollfd p{kernel.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 5000) == 1);
    std::vector<std::byte> buf(1 << 16);
    const ssize_t n = ::recv(kernel.get(), buf.data(), buf.size(), 0);
    REQUIRE(n >= static_cast<ssize_t>(sizeof(fuse_out_header)));
    fuse_out_header h{};
    std::memcpy(&h, buf.data(), sizeof h);
    CHECK(h.len == static_cast<uint32_t>(n));
    if (h.error == 0) {
      CHECK(static_cast<size_t>(n) == sizeof h + body_size);
    }
    return h;
  }
};

struct Harness {
  std::shared_ptr<FakeFs> fs = std::make_shared<FakeFs>();
  Session session{fs, SessionOptions{.max_write = 128 * 1024}};
  std::vector<std::unique_ptr<KernelEnd>> ends;
  std::atomic<int> finished_calls{0};
  std::unique_ptr<FuseDevServer> server;

  // `clonable`: how many extra fds clone_fd hands out before failing with EACCES.
  explicit Harness(unsigned threads, unsigned clonable = ~0u) {
    for (unsigned i = 0; i < threads; ++i)
      ends.push_back(std::make_unique<KernelEnd>());
    FuseDevServerOptions options;
    options.threads = threads;
    options.ring_mode = io::Ring::Mode::thread_pool;  // no io_uring needed for these tests
    auto next = std::make_shared<unsigned>(1);
    options.clone_fd = [this, next, clonable](int) {
      if (*next > clonable) throw std::system_error(EACCES, std::generic_category(), "clone");
      return std::move(ends.at((*next)++)->server);
    };
    server = std::make_unique<FuseDevServer>(session, std::move(ends[0]->server), options);
    server->on_finished([this] { ++finished_calls; });
    server->start();
  }
  KernelEnd& end(size_t i) { return *ends.at(i); }
  void init() {
    end(0).send_init();
    CHECK(end(0).receive(sizeof(fuse_init_out)).error == 0);
    REQUIRE(session.initialized());
  }
};

}  // namespace

TEST_CASE("server answers INIT and requests on the fd they came from", "[transport][server]") {
  Harness h(2);
  h.init();
  h.end(1).send_getattr(1, 7);
  const auto r = h.end(1).receive(sizeof(fuse_attr_out));
  CHECK(r.unique == 7);
  CHECK(r.error == 0);
  h.end(0).send_getattr(1, 8);
  CHECK(h.end(0).receive(sizeof(fuse_attr_out)).unique == 8);

  h.server->stop();
  h.server->wait();
  CHECK(h.server->stop_reason() == FuseDevServer::StopReason::requested);
  CHECK(h.fs->destroys == 1);
  CHECK(h.finished_calls == 1);
  const auto c = h.server->counters();
  CHECK(c.requests == 3);
  CHECK(c.replies == 3);
  CHECK(c.replies_failed == 0);
}

TEST_CASE("a slow request does not hold back the next one", "[transport][server]") {
  Harness h(1);
  h.init();
  h.end(0).send_getattr(slow_ino, 10);
  h.end(0).send_getattr(1, 11);
  CHECK(h.end(0).receive(sizeof(fuse_attr_out)).unique == 11);
  CHECK(h.end(0).receive(sizeof(fuse_attr_out)).unique == 10);
}

TEST_CASE("the steady state recycles request buffers", "[transport][server]") {
  Harness h(1);
  h.init();
  for (uint64_t i = 0; i < 500; ++i) {
    h.end(0).send_getattr(1, 100 + i);
    REQUIRE(h.end(0).receive(sizeof(fuse_attr_out)).unique == 100 + i);
  }
  // One buffer waits in the reader, one serves the request: nothing per request.
  CHECK(h.server->counters().buffer_allocations <= 3);
  CHECK(h.server->counters().requests == 501);
}

TEST_CASE("stop waits for requests in flight on other threads / then shuts down once",
          "[transport][server]") {
  // Thread 0 drains at once while thread 1 is still busy: thread 0 must keep running until
  // thread 1 reports, and the filesystem is destroyed only after the slow request replied.
  Harness h(3);
  h.init();
  h.end(1).send_getattr(slow_ino, 20);
  std::this_thread::sleep_for(50ms);
  h.server->stop();
  h.server->wait();
  CHECK(h.end(1).receive(sizeof(fuse_attr_out)).unique == 20);
  CHECK(h.fs->destroys == 1);
  CHECK(h.fs->slow_done_before_destroy);
  CHECK(h.finished_calls == 1);
}

TEST_CASE("FUSE_DESTROY stops the server", "[transport][server]") {
  Harness h(2);
  h.init();
  h.end(1).send_raw(FUSE_DESTROY, 0, 30, nullptr, 0);
  CHECK(h.end(1).receive(0).unique == 30);
  h.server->wait();
  CHECK(h.server->stop_reason() == FuseDevServer::StopReason::destroyed);
  CHECK(h.fs->destroys == 1);
}

TEST_CASE("a broken device stops every thread", "[transport][server]") {
  Harness h(2);
  h.init();
  h.end(1).kernel.reset();  // thread 1 reads EOF: not a /dev/fuse behaviour, so a failure
  h.server->wait();
  CHECK(h.server->stop_reason() == FuseDevServer::StopReason::failed);
  CHECK(h.finished_calls == 1);
}

TEST_CASE("stop before any request and destruction without wait are clean", "[transport][server]") {
  {
    Harness h(2);
    h.server->stop();
  }  // ~FuseDevServer waits
  Harness h(1);
  CHECK_FALSE(h.server->stopping());
}

TEST_CASE("without permission to clone /dev/fuse the server runs on fewer threads",
          "[transport][server]") {
  Harness h(3, 1);
  CHECK(h.server->threads() == 2);
  h.init();
  h.end(1).send_getattr(1, 40);
  CHECK(h.end(1).receive(sizeof(fuse_attr_out)).unique == 40);
}
