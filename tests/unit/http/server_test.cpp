// The HTTP server's connection handling, in-process with a real VolumeStore in a temp dir and a
// plain socket as the client: keep-alive and pipelining, the header and idle timeouts, the
// connection cap, and stop() ending open connections.
#include "http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "core/io/io_threads.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume_store.hpp"

using namespace sandfs;
using namespace std::chrono_literals;

namespace {

const std::string token(64, 'a');

struct Fixture {
  std::filesystem::path dir;
  std::unique_ptr<volumes::VolumeStore> store;
  std::unique_ptr<io::IoThreads> threads;
  std::unique_ptr<volumes::MountManager> mounts;
  std::unique_ptr<http::Server> server;
  uint16_t port = 0;

  explicit Fixture(http::ServerOptions options) {
    char tmpl[] = "/tmp/sandfs-http-server-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto opened = volumes::VolumeStore::open(dir);
    REQUIRE(opened.ok());
    store = std::move(*opened);
    threads = std::make_unique<io::IoThreads>(1);
    mounts = std::make_unique<volumes::MountManager>(*store, *threads, dir.string());
    options.listen = "127.0.0.1:0";
    server = std::make_unique<http::Server>(*store, *mounts, *threads, token, options);
    server->start();
    const std::string addr = server->tcp_address();
    port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
  }
  ~Fixture() {
    server->stop();
    server.reset();
    mounts.reset();
    threads->stop();
    threads.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  int connect() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
  }
};

void send_all(int fd, const std::string& data) {
  REQUIRE(::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()));
}

// Reads until `count` complete responses (header + Content-Length body) arrived, the peer
// closed, or `timeout` passed. Returns what was read.
std::string read_responses(int fd, int count, std::chrono::milliseconds timeout) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto complete = [&] {
    size_t pos = 0;
    for (int i = 0; i < count; ++i) {
      const size_t end = out.find("\r\n\r\n", pos);
      if (end == std::string::npos) return false;
      size_t length = 0;
      const size_t cl = out.find("Content-Length: ", pos);
      if (cl != std::string::npos && cl < end)
        length = std::strtoul(out.c_str() + cl + 16, nullptr, 10);
      if (out.size() < end + 4 + length) return false;
      pos = end + 4 + length;
    }
    return true;
  };
  while (!complete()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Whether the server closed the connection within `timeout` (recv returns 0 or an error).
bool closed_within(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char buf[256];
  return ::recv(fd, buf, sizeof buf, 0) <= 0;
}

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t pos = s.find(what); pos != std::string::npos; pos = s.find(what, pos + 1))
    ++n;
  return n;
}

http::ServerOptions quick_options() {
  http::ServerOptions o;
  o.header_timeout = 300ms;
  o.idle_timeout = 600ms;
  o.io_timeout = 2000ms;
  o.max_connections = 4;
  return o;
}

}  // namespace

TEST_CASE("pipelined requests on one keep-alive connection", "[http][server]") {
  Fixture f(quick_options());
  const int fd = f.connect();
  const std::string auth = "Authorization: Bearer " + token + "\r\n";
  send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/volumes HTTP/1.1\r\nHost: x\r\n" +
                   auth + "\r\nGET /v1/volumes HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string replies = read_responses(fd, 3, 2000ms);
  CHECK(count_of(replies, "HTTP/1.1 200 OK") == 2);
  CHECK(count_of(replies, "HTTP/1.1 401 Unauthorized") == 1);
  CHECK(replies.find("{\"volumes\":[]}") != std::string::npos);
  ::close(fd);
}

TEST_CASE("a half-sent header is cut off by the header timeout", "[http][server]") {
  Fixture f(quick_options());
  const int slow = f.connect();
  send_all(slow, "GET /healthz HTTP/1.1\r\nHo");
  // Others are served meanwhile.
  const int other = f.connect();
  send_all(other, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(read_responses(other, 1, 1000ms).starts_with("HTTP/1.1 200"));
  CHECK(closed_within(slow, 2000ms));
  ::close(slow);
  ::close(other);
}

TEST_CASE("a silent new connection gets the header timeout", "[http][server]") {
  Fixture f(quick_options());
  const int fd = f.connect();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(closed_within(fd, 2000ms));
  CHECK(std::chrono::steady_clock::now() - t0 < 550ms);
  ::close(fd);
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout", "[http][server]") {
  Fixture f(quick_options());
  const int fd = f.connect();
  send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(read_responses(fd, 1, 1000ms).starts_with("HTTP/1.1 200"));
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(closed_within(fd, 3000ms));
  CHECK(std::chrono::steady_clock::now() - t0 > 400ms);
  ::close(fd);
}

TEST_CASE("connections over the cap get 503", "[http][server]") {
  Fixture f(quick_options());
  int held[4];
  for (int& fd : held)
    fd = f.connect();
  std::this_thread::sleep_for(100ms);
  const int extra = f.connect();
  CHECK(read_responses(extra, 1, 1000ms).starts_with("HTTP/1.1 503"));
  ::close(extra);
  for (int fd : held)
    ::close(fd);
}

TEST_CASE("stop closes open connections promptly", "[http][server]") {
  http::ServerOptions o = quick_options();
  o.header_timeout = 30s;
  o.idle_timeout = 30s;
  Fixture f(o);
  const int fd = f.connect();
  send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(read_responses(fd, 1, 1000ms).starts_with("HTTP/1.1 200"));
  const auto t0 = std::chrono::steady_clock::now();
  f.server->stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(closed_within(fd, 1000ms));
  ::close(fd);
}

TEST_CASE("a body over the JSON limit is 413 before it is read", "[http][server]") {
  http::ServerOptions o = quick_options();
  o.max_body_bytes = 1024;
  Fixture f(o);
  const int fd = f.connect();
  send_all(fd, "POST /v1/volumes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                   "\r\nContent-Length: 5000\r\n\r\n{");
  const std::string reply = read_responses(fd, 1, 1000ms);
  CHECK(reply.starts_with("HTTP/1.1 413"));
  CHECK(reply.find("payload_too_large") != std::string::npos);
  CHECK(reply.find("Connection: close") != std::string::npos);
  ::close(fd);
}
