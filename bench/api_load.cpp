// api_load: a keep-alive HTTP/1.1 load client for the admin API of `sandfsd serve`.
//
//   api_load --server 127.0.0.1:7270 --token-file F --op create|get|list|write|read
//            [--connections 4] [--seconds 5] [--volume NAME] [--prefix P]
//   api_load --direct DIR --op create|get|list|write ...   (the same work on the host directly)
//
// Each connection is one thread with one request in flight, looping for --seconds:
//   create  POST /v1/volumes {"name": "<prefix>-<conn>-<i>"}           (direct: mkdir)
//   get     GET /v1/volumes/<volume>                                  (direct: stat)
//   list    GET /v1/volumes                                           (direct: readdir + stat)
//   write   PUT /v1/volumes/<volume>/files/w<conn>-<i % 64> (4 KiB)   (direct: open/write/close)
//   read    GET /v1/volumes/<volume>/files/r4k (a 4 KiB file the caller put there; direct:
//           open/read/close)
// Every response is checked (status 2xx; list: a body; read: 4096 bytes). Prints one line:
//   op=… connections=… requests=… errors=… rps=… p50_us=… p99_us=… max_us=…
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string host = "127.0.0.1";
  int port = 7270;
  std::string token;
  std::string op = "get";
  int connections = 4;
  double seconds = 5;
  std::string volume = "bench";
  std::string prefix = "load";
  std::string direct;  // non-empty: host baseline in this directory
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "api_load: %s\n", m.c_str());
  std::exit(2);
}

class Conn {
 public:
  explicit Conn(const Config& c) : c_(c) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(c.port));
    if (::inet_pton(AF_INET, c.host.c_str(), &a.sin_addr) != 1)
      die("--server needs an IPv4 address");
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      die(std::string("connect: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Conn() { ::close(fd_); }

  // Returns the status (0 on a transport failure); the body lands in body_.
  int request(const std::string& method, const std::string& target, const std::string& body) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + c_.host +
                      "\r\nAuthorization: Bearer " + c_.token + "\r\n";
    if (method == "POST" || method == "PUT")
      req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    req += "\r\n";
    req += body;
    if (!send_all(req)) return 0;
    // Headers.
    size_t end;
    while ((end = in_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return 0;
    const std::string head = in_.substr(0, end);
    in_.erase(0, end + 4);
    if (head.size() < 12) return 0;
    const int status = std::atoi(head.c_str() + 9);
    size_t length = 0;
    std::string lower = head;
    for (char& ch : lower)
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (const auto p = lower.find("\r\ncontent-length:"); p != std::string::npos)
      length = std::strtoull(lower.c_str() + p + 17, nullptr, 10);
    else if (lower.find("transfer-encoding: chunked") != std::string::npos)
      die("chunked responses are not expected from these routes");
    while (in_.size() < length)
      if (!fill()) return 0;
    body_ = in_.substr(0, length);
    in_.erase(0, length);
    return status;
  }
  const std::string& body() const { return body_; }

 private:
  bool send_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool fill() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in_.append(buf, static_cast<size_t>(n));
    return true;
  }
  const Config& c_;
  int fd_ = -1;
  std::string in_, body_;
};

bool direct_op(const Config& c, int conn, uint64_t i, const std::string& data) {
  const std::string base = c.direct;
  if (c.op == "create") {
    const std::string p =
        base + "/" + c.prefix + "-" + std::to_string(conn) + "-" + std::to_string(i);
    return ::mkdir(p.c_str(), 0700) == 0;
  }
  if (c.op == "get") {
    struct stat st {};
    return ::stat((base + "/" + c.volume).c_str(), &st) == 0;
  }
  if (c.op == "list") {
    DIR* d = ::opendir(base.c_str());
    if (!d) return false;
    const int dfd = ::dirfd(d);
    size_t n = 0;
    while (dirent* e = ::readdir(d)) {
      struct stat st {};
      if (e->d_name[0] != '.' && ::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) ++n;
    }
    ::closedir(d);
    return n > 0;
  }
  if (c.op == "read") {
    const int fd = ::open((base + "/" + c.volume + "/r4k").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[8192];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    return n == 4096;
  }
  const std::string p =
      base + "/" + c.volume + "/w" + std::to_string(conn) + "-" + std::to_string(i % 64);
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  std::string token_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--server") {
      const std::string v = next();
      const auto colon = v.rfind(':');
      if (colon == std::string::npos) die("--server HOST:PORT");
      c.host = v.substr(0, colon);
      c.port = std::atoi(v.c_str() + colon + 1);
    } else if (a == "--token") {
      c.token = next();
    } else if (a == "--token-file") {
      token_file = next();
    } else if (a == "--op") {
      c.op = next();
    } else if (a == "--connections") {
      c.connections = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--seconds") {
      c.seconds = std::atof(next().c_str());
    } else if (a == "--volume") {
      c.volume = next();
    } else if (a == "--prefix") {
      c.prefix = next();
    } else if (a == "--direct") {
      c.direct = next();
    } else {
      die("unknown argument " + a);
    }
  }
  if (c.op != "create" && c.op != "get" && c.op != "list" && c.op != "write" && c.op != "read")
    die("--op create|get|list|write|read");
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    std::getline(in, c.token);
  }

  const std::string data(4096, 'x');
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<uint32_t>> lat(static_cast<size_t>(c.connections));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int t = 0; t < c.connections; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Conn> conn;
      if (c.direct.empty()) conn = std::make_unique<Conn>(c);
      auto& mine = lat[static_cast<size_t>(t)];
      mine.reserve(1 << 16);
      for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const auto t0 = Clock::now();
        bool ok;
        if (!c.direct.empty()) {
          ok = direct_op(c, t, i, data);
        } else if (c.op == "create") {
          ok = conn->request("POST", "/v1/volumes",
                             "{\"name\":\"" + c.prefix + "-" + std::to_string(t) + "-" +
                                 std::to_string(i) + "\"}") /
                   100 ==
               2;
        } else if (c.op == "get") {
          ok = conn->request("GET", "/v1/volumes/" + c.volume, "") / 100 == 2;
        } else if (c.op == "list") {
          ok = conn->request("GET", "/v1/volumes", "") / 100 == 2 && conn->body().size() > 2;
        } else if (c.op == "read") {
          ok = conn->request("GET", "/v1/volumes/" + c.volume + "/files/r4k", "") / 100 == 2 &&
               conn->body().size() == 4096;
        } else {
          ok = conn->request("PUT",
                             "/v1/volumes/" + c.volume + "/files/w" + std::to_string(t) + "-" +
                                 std::to_string(i % 64),
                             data) /
                   100 ==
               2;
        }
        const auto us =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count();
        if (!ok) {
          errors.fetch_add(1);
          if (c.direct.empty() && errors.load() > 1000) die("too many errors");
        }
        mine.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(c.seconds));
  stop = true;
  for (auto& th : threads)
    th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<uint32_t> all;
  for (auto& v : lat)
    all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0u : all[std::min(all.size() - 1, static_cast<size_t>(p * all.size()))];
  };
  std::printf(
      "op=%s connections=%d requests=%zu errors=%llu rps=%.0f p50_us=%u p99_us=%u max_us=%u\n",
      c.op.c_str(), c.connections, all.size(), static_cast<unsigned long long>(errors.load()),
      all.size() / elapsed, pct(0.50), pct(0.99), all.empty() ? 0u : all.back());
  return errors.load() == 0 ? 0 : 1;
}
