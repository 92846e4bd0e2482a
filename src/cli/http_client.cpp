#include "cli/http_client.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "core/unique_fd.hpp"

namespace sandfs::cli {

namespace {

constexpr size_t max_header_bytes = 64 * 1024;
constexpr int io_timeout_seconds = 300;  // a big upload or download may take a while

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool write_all(int fd, const char* data, size_t size, std::string& error) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = std::string("cannot send to the server: ") + std::strerror(errno);
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

UniqueFd connect_to(const Endpoint& e, std::string& error) {
  if (!e.unix_socket.empty()) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (e.unix_socket.size() >= sizeof addr.sun_path) {
      error = "unix socket path too long: " + e.unix_socket;
      return {};
    }
    std::memcpy(addr.sun_path, e.unix_socket.c_str(), e.unix_socket.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      error = "cannot connect to " + e.unix_socket + ": " + std::strerror(errno);
      return {};
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(e.port);
  if (const int rc = ::getaddrinfo(e.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    error = "cannot resolve " + e.host + ": " + ::gai_strerror(rc);
    return {};
  }
  int last = ECONNREFUSED;
  UniqueFd fd;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    UniqueFd s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!s) {
      last = errno;
      continue;
    }
    if (::connect(s.get(), a->ai_addr, a->ai_addrlen) == 0) {
      fd = std::move(s);
      break;
    }
    last = errno;
  }
  ::freeaddrinfo(found);
  if (!fd) {
    error = "cannot connect to " + e.host + ":" + port + ": " + std::strerror(last) +
            " (is `sandfsd serve` running?)";
    return {};
  }
  const int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Buffered reader over the socket.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  // Reads up to and including "\r\n"; false on EOF/error or a line over `limit`.
  bool line(std::string& out, size_t limit) {
    out.clear();
    for (;;) {
      const auto nl = buf_.find("\r\n", pos_);
      if (nl != std::string::npos) {
        out.assign(buf_, pos_, nl - pos_);
        pos_ = nl + 2;
        return true;
      }
      if (buf_.size() - pos_ > limit || !fill()) return false;
    }
  }
  // Reads exactly n bytes into `sink` (a callback taking (data, size)); false on early EOF.
  template <class Sink>
  bool exact(uint64_t n, Sink&& sink) {
    while (n > 0) {
      if (pos_ == buf_.size() && !fill()) return false;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(n, buf_.size() - pos_));
      if (!sink(buf_.data() + pos_, take)) return false;
      pos_ += take;
      n -= take;
    }
    return true;
  }
  template <class Sink>
  bool to_eof(Sink&& sink) {
    for (;;) {
      if (pos_ < buf_.size()) {
        if (!sink(buf_.data() + pos_, buf_.size() - pos_)) return false;
        pos_ = buf_.size();
      }
      if (!fill()) return eof_;
    }
  }

 private:
  bool fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    }
    char chunk[64 * 1024];
    for (;;) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = n == 0;
        return false;
      }
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
  }
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
};

bool parse_u64(std::string_view s, int base, uint64_t& out) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace

std::string HttpResponse::header(const std::string& lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

bool parse_server_url(const std::string& url, Endpoint& out, std::string& error) {
  std::string_view s = url;
  if (s.rfind("http://", 0) == 0) s.remove_prefix(7);
  while (!s.empty() && s.back() == '/')
    s.remove_suffix(1);
  const auto colon = s.rfind(':');
  if (s.empty() || colon == std::string_view::npos || colon == 0) {
    error = "--server: expected http://HOST:PORT, got '" + url + "'";
    return false;
  }
  uint64_t port = 0;
  if (!parse_u64(s.substr(colon + 1), 10, port) || port == 0 || port > 65535) {
    error = "--server: bad port in '" + url + "'";
    return false;
  }
  std::string host(s.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  out.host = host;
  out.port = static_cast<uint16_t>(port);
  out.unix_socket.clear();
  return true;
}

std::string encode_path(const std::string& path) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : path) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool http_exchange(const Endpoint& endpoint, const HttpRequest& req, HttpResponse& resp,
                   std::string& error) {
  UniqueFd fd = connect_to(endpoint, error);
  if (!fd) return false;
  timeval tv{io_timeout_seconds, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  std::string head = req.method + " " + req.target + " HTTP/1.1\r\n";
  head += endpoint.unix_socket.empty()
              ? "Host: " + endpoint.host + ":" + std::to_string(endpoint.port) + "\r\n"
              : std::string("Host: localhost\r\n");
  head += "User-Agent: sandfsd-cli\r\nConnection: close\r\n";
  if (!endpoint.token.empty()) head += "Authorization: Bearer " + endpoint.token + "\r\n";
  if (!req.content_type.empty()) head += "Content-Type: " + req.content_type + "\r\n";
  const bool chunked = req.body_fd >= 0 && req.body_size < 0;
  if (req.body_fd >= 0 && !chunked) {
    head += "Content-Length: " + std::to_string(req.body_size) + "\r\n";
  } else if (chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  } else if (!req.body.empty() || req.method == "POST" || req.method == "PUT" ||
             req.method == "PATCH") {
    head += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
  }
  head += "\r\n";
  if (!write_all(fd.get(), head.data(), head.size(), error)) return false;
  if (req.body_fd >= 0) {
    std::vector<char> buf(256 * 1024);
    uint64_t sent = 0;
    for (;;) {
      const ssize_t n = ::read(req.body_fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = std::string("cannot read the file to upload: ") + std::strerror(errno);
        return false;
      }
      if (n == 0) break;
      if (chunked) {
        char size_line[32];
        const int len =
            std::snprintf(size_line, sizeof size_line, "%zx\r\n", static_cast<size_t>(n));
        if (!write_all(fd.get(), size_line, static_cast<size_t>(len), error) ||
            !write_all(fd.get(), buf.data(), static_cast<size_t>(n), error) ||
            !write_all(fd.get(), "\r\n", 2, error))
          return false;
      } else {
        if (!write_all(fd.get(), buf.data(), static_cast<size_t>(n), error)) return false;
      }
      sent += static_cast<uint64_t>(n);
    }
    if (chunked && !write_all(fd.get(), "0\r\n\r\n", 5, error)) return false;
    if (!chunked && sent != static_cast<uint64_t>(req.body_size)) {
      error = "the file changed size while it was uploaded";
      return false;
    }
  } else if (!req.body.empty()) {
    if (!write_all(fd.get(), req.body.data(), req.body.size(), error)) return false;
  }

  Reader in(fd.get());
  std::string line;
  if (!in.line(line, max_header_bytes)) {
    error = "the server closed the connection without answering";
    return false;
  }
  // "HTTP/1.1 200 OK"
  if (line.size() < 12 || line.compare(0, 5, "HTTP/") != 0) {
    error = "not an HTTP response: " + line.substr(0, 80);
    return false;
  }
  uint64_t status = 0;
  if (!parse_u64(std::string_view(line).substr(9, 3), 10, status)) {
    error = "bad status line: " + line.substr(0, 80);
    return false;
  }
  resp.status = static_cast<int>(status);
  size_t header_bytes = 0;
  for (;;) {
    if (!in.line(line, max_header_bytes)) {
      error = "the server closed the connection in the response headers";
      return false;
    }
    if (line.empty()) break;
    header_bytes += line.size();
    if (header_bytes > max_header_bytes) {
      error = "response headers too large";
      return false;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.erase(0, 1);
    resp.headers.emplace_back(lower(line.substr(0, colon)), value);
  }

  const bool to_fd = req.response_fd >= 0 && resp.status >= 200 && resp.status < 300;
  auto sink = [&](const char* data, size_t size) {
    if (!to_fd) {
      resp.body.append(data, size);
      return true;
    }
    while (size > 0) {
      const ssize_t n = ::write(req.response_fd, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = std::string("cannot write the download: ") + std::strerror(errno);
        return false;
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  };
  if (req.method == "HEAD" || resp.status == 204 || resp.status == 304) return true;
  if (lower(resp.header("transfer-encoding")).find("chunked") != std::string::npos) {
    for (;;) {
      if (!in.line(line, 1024)) {
        error = error.empty() ? "the response ended inside a chunk" : error;
        return false;
      }
      uint64_t size = 0;
      if (!parse_u64(std::string_view(line).substr(0, line.find(';')), 16, size)) {
        error = "bad chunk size in the response";
        return false;
      }
      if (size == 0) {
        while (in.line(line, max_header_bytes) && !line.empty()) {
        }
        return true;
      }
      if (!in.exact(size, sink) || !in.line(line, 2)) {
        if (error.empty()) error = "the response ended inside a chunk";
        return false;
      }
    }
  }
  if (const std::string cl = resp.header("content-length"); !cl.empty()) {
    uint64_t size = 0;
    if (!parse_u64(cl, 10, size)) {
      error = "bad Content-Length in the response";
      return false;
    }
    if (!in.exact(size, sink)) {
      if (error.empty()) error = "the response ended early";
      return false;
    }
    return true;
  }
  if (!in.to_eof(sink)) {
    if (error.empty()) error = "the response ended with an error";
    return false;
  }
  return true;
}

}  // namespace sandfs::cli
