#include "transport/vhost_user/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <system_error>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"

namespace sandfs::vhost_user {

namespace asio = boost::asio;
using Protocol = asio::local::stream_protocol;

namespace {

// Whether something accepts connections at `path` (a live server we must not replace).
bool someone_listens(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

}  // namespace

VhostUserServer::VhostUserServer(io::IoThreads& threads, std::string socket_path,
                                 FilesystemFactory factory, DeviceOptions options)
    : threads_(threads),
      path_(std::move(socket_path)),
      factory_(std::move(factory)),
      options_(std::move(options)),
      accept_ctx_(threads.pick()) {}

VhostUserServer::~VhostUserServer() {
  stop();
}

void VhostUserServer::start() {
  if (path_.empty() || path_.size() >= sizeof(sockaddr_un{}.sun_path)) {
    throw std::system_error(ENAMETOOLONG, std::generic_category(),
                            "vhost-user socket path '" + path_ + "' (at most 107 bytes)");
  }
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw std::system_error(EEXIST, std::generic_category(),
                              path_ + " exists and is not a socket");
    }
    if (someone_listens(path_)) {
      throw std::system_error(EADDRINUSE, std::generic_category(),
                              "another server listens on " + path_);
    }
    ::unlink(path_.c_str());  // stale: left by a server that did not exit cleanly
  }
  acceptor_ = std::make_unique<Protocol::acceptor>(accept_ctx_);
  boost::system::error_code ec;
  acceptor_->open(Protocol(), ec);
  if (!ec) acceptor_->bind(Protocol::endpoint(path_), ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::system_error(ec.value(), std::generic_category(), "listen on " + path_);
  }
  asio::co_spawn(accept_ctx_, accept_loop(), asio::detached);
}

Task<void> VhostUserServer::accept_loop() {
  for (;;) {
    asio::io_context& ctx = threads_.pick();
    Protocol::socket socket(ctx);
    auto [ec] = co_await acceptor_->async_accept(socket, asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
    if (ec) {
      SANDFS_LOG(warn) << path_ << ": accept: " << ec.message();
      continue;
    }
    const uint64_t number = connections_.fetch_add(1, std::memory_order_relaxed) + 1;
    live_.fetch_add(1, std::memory_order_relaxed);
    asio::co_spawn(ctx, serve(std::move(socket), number), asio::detached);
  }
}

Task<void> VhostUserServer::serve(Protocol::socket socket, uint64_t number) {
  const std::string name = path_ + " #" + std::to_string(number);
  std::string error;
  std::shared_ptr<Filesystem> fs = factory_(error);
  if (!fs) {
    SANDFS_LOG(error) << name << ": no filesystem for this connection: " << error;
    live_.fetch_sub(1, std::memory_order_relaxed);
    co_return;
  }
  SANDFS_LOG(info) << name << ": frontend connected";
  auto device = std::make_shared<Device>(MessageChannel(std::move(socket)), std::move(fs), options_,
                                         threads_, name);
  {
    std::lock_guard lock(mu_);
    devices_.push_back(device);
    // A connection accepted just before stop() reaches this point after stop() walked
    // devices_: it would be neither disconnected nor waited for in time (stop() gave up after
    // 30 s and returned while it still ran).
    if (stopped_) device->disconnect();
  }
  co_await device->run();
  finished_requests_.fetch_add(device->counters().requests, std::memory_order_relaxed);
  finished_bad_chains_.fetch_add(device->counters().bad_chains, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    std::erase_if(devices_, [&](const std::weak_ptr<Device>& w) {
      auto d = w.lock();
      return !d || d == device;
    });
  }
  live_.fetch_sub(1, std::memory_order_relaxed);
}

void VhostUserServer::stop() {
  {
    std::lock_guard lock(mu_);  // serve() reads stopped_ under mu_
    if (stopped_) return;
    stopped_ = true;
  }
  if (acceptor_) {
    asio::post(accept_ctx_, [this] {
      boost::system::error_code ignored;
      acceptor_->close(ignored);
      accept_closed_ = true;
    });
  }
  {
    std::lock_guard lock(mu_);
    for (auto& w : devices_) {
      if (auto d = w.lock()) d->disconnect();
    }
  }
  // Connections end on their own threads: wait for them (their queues wait for requests).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (live_.load(std::memory_order_relaxed) > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (acceptor_) {
    // The close was posted; make sure it ran before the acceptor goes.
    for (int i = 0; i < 200 && !accept_closed_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::unlink(path_.c_str());
  }
}

ServerTotals VhostUserServer::totals() const {
  ServerTotals t;
  t.connections = connections_.load(std::memory_order_relaxed);
  t.requests = finished_requests_.load(std::memory_order_relaxed);
  t.bad_chains = finished_bad_chains_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  for (const auto& w : devices_) {
    if (auto d = w.lock()) {
      t.requests += d->counters().requests;
      t.bad_chains += d->counters().bad_chains;
    }
  }
  return t;
}

}  // namespace sandfs::vhost_user
