// The only translation unit with Boost.Beast in it (each costs ~1 GB and ~20 s to compile).
#include "http/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "core/io/io_threads.hpp"
#include "core/io/ring.hpp"
#include "core/log.hpp"
#include "http/api.hpp"
#include "http/msb_api.hpp"
#include "http/router.hpp"
#include "http/token.hpp"
#include "volumes/volume_files.hpp"

namespace sandfs::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::awaitable;
using volumes::Error;
using volumes::ErrorCode;

namespace {

constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr size_t header_limit = 16 * 1024;
constexpr size_t file_chunk = 256 * 1024;

// Runs blocking calls off the event loop: the awaiting coroutine resumes on its own executor
// with the result, or with the exception the call threw.
class BlockingPool {
 public:
  explicit BlockingPool(unsigned threads) : pool_(threads) {}

  template <class F>
  awaitable<std::invoke_result_t<F&>> run(F fn) {
    using R = std::invoke_result_t<F&>;
    std::optional<R> result =
        co_await asio::async_initiate<decltype(asio::use_awaitable),
                                      void(std::exception_ptr, std::optional<R>)>(
            [this](auto handler, F f) {
              auto home = asio::prefer(asio::get_associated_executor(handler),
                                       asio::execution::outstanding_work.tracked);
              asio::post(pool_, [handler = std::move(handler), f = std::move(f),
                                 home = std::move(home)]() mutable {
                std::exception_ptr error;
                std::optional<R> value;
                try {
                  value.emplace(f());
                } catch (...) {
                  error = std::current_exception();
                }
                asio::post(home, [handler = std::move(handler), error,
                                  value = std::move(value)]() mutable {
                  std::move(handler)(error, std::move(value));
                });
              });
            },
            asio::use_awaitable, std::move(fn));
    co_return std::move(*result);
  }

  void join() { pool_.join(); }

 private:
  asio::thread_pool pool_;
};

struct ListenAddress {
  asio::ip::address address;
  uint16_t port = 0;
};

ListenAddress parse_listen(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    throw std::runtime_error("--listen " + text + ": needs HOST:PORT (e.g. 127.0.0.1:7270)");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  ListenAddress out;
  boost::system::error_code ec;
  out.address = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("--listen " + text + ": '" + host + "' is not an IP address");
  const std::string port = text.substr(colon + 1);
  unsigned long n = 0;
  for (char c : port) {
    if (c < '0' || c > '9' || n > 65535) {
      throw std::runtime_error("--listen " + text + ": bad port '" + port + "'");
    }
    n = n * 10 + static_cast<unsigned long>(c - '0');
  }
  if (n > 65535) throw std::runtime_error("--listen " + text + ": bad port '" + port + "'");
  out.port = static_cast<uint16_t>(n);
  return out;
}

// A stale socket file from a server that is gone is removed; a live one is an error.
void clear_stale_unix_socket(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode)) {
    throw std::runtime_error("--unix-socket " + path + ": exists and is not a socket");
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  const bool live =
      fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0) ::close(fd);
  if (live) throw std::runtime_error("--unix-socket " + path + ": another server listens there");
  ::unlink(path.c_str());
}

// What a request needs before its body is read.
struct Exchange {
  unsigned version = 11;
  bool keep_alive = true;
  bool head = false;
  bool body_unread = false;  // the request has a body we did not read: close after replying
  bool expect_continue = false;
};

// A writer for a streamed upload and the volume (by name) it writes into.
struct OpenedUpload {
  std::unique_ptr<volumes::VolumeFiles::Writer> writer;
  std::string volume;
};

// An error in the envelope of the API the request came in on.
ApiResponse error_for(bool msb, const Error& error) {
  return msb ? msb_error_response(error) : error_response(error);
}
ApiResponse error_for(bool msb, unsigned status, std::string_view code, std::string_view message) {
  return msb ? msb_error_response(status, code, message) : error_response(status, code, message);
}

}  // namespace

struct Server::Impl {
  Impl(volumes::VolumeStore& store, volumes::MountManager& mounts, io::IoThreads& io_threads,
       std::string bearer, ServerOptions o)
      : threads(io_threads),
        token(std::move(bearer)),
        options(std::move(o)),
        api(store, mounts),
        msb(store, api, options.msb_default_volume),
        pool(options.blocking_threads == 0 ? 1 : options.blocking_threads) {}

  io::IoThreads& threads;
  std::string token;
  ServerOptions options;
  Api api;
  MsbApi msb;
  BlockingPool pool;

  std::unique_ptr<asio::ip::tcp::acceptor> tcp;
  std::unique_ptr<asio::local::stream_protocol::acceptor> local;
  std::string tcp_addr;
  std::string unix_path;

  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<uint64_t, std::function<void()>> closers;  // open connections
  uint64_t next_id = 0;
  unsigned running_listeners = 0;
  std::atomic<bool> stopping{false};
  bool stopped = false;

  void start();
  void stop();

  template <class Protocol>
  awaitable<void> accept_loop(asio::basic_socket_acceptor<Protocol>& acceptor);
  template <class Protocol>
  awaitable<void> serve(std::shared_ptr<beast::basic_stream<Protocol>> stream, uint64_t id);
  template <class Stream>
  awaitable<bool> serve_one(Stream& stream, beast::flat_buffer& buffer);
  template <class Stream>
  awaitable<bool> reply(Stream& stream, const Exchange& x, ApiResponse response);
  template <class Stream>
  awaitable<bool> serve_msb(Stream& stream, beast::flat_buffer& buffer,
                            bhttp::request_parser<bhttp::empty_body>& header, Exchange& x,
                            Method method, std::string_view route_path);
  // Reads a small (JSON) body whole into `body`, within max_body_bytes. nullopt when it did;
  // otherwise it has replied (or the connection failed) and the value is serve_one's result.
  template <class Stream>
  awaitable<std::optional<bool>> read_small_body(Stream& stream, beast::flat_buffer& buffer,
                                                 bhttp::request_parser<bhttp::empty_body>& header,
                                                 Exchange& x, bool msb, std::string& body);
  // `open` runs on the blocking pool and returns Outcome<VolumeFiles::ReadHandle>.
  template <class Stream, class Open>
  awaitable<bool> download(Stream& stream, Exchange& x, Open open, bool msb, std::string what);
  // `open` runs on the blocking pool and returns Outcome<OpenedUpload>.
  template <class Stream, class Open>
  awaitable<bool> upload(Stream& stream, beast::flat_buffer& buffer,
                         bhttp::request_parser<bhttp::empty_body>& header, Exchange& x, Open open,
                         bool msb);
  template <class Stream>
  awaitable<bool> send_continue(Stream& stream, Exchange& x);

  void leave(uint64_t id) {
    std::lock_guard lock(mu);
    closers.erase(id);
    cv.notify_all();
  }
};

void Server::Impl::start() {
  auto spawn_listener = [this](auto& acceptor) {
    {
      std::lock_guard lock(mu);
      ++running_listeners;
    }
    asio::co_spawn(acceptor.get_executor(), accept_loop(acceptor), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          SANDFS_LOG(error) << "http: listener stopped: " << x.what();
        }
      }
      std::lock_guard lock(mu);
      --running_listeners;
      cv.notify_all();
    });
  };

  if (!options.listen.empty()) {
    const ListenAddress where = parse_listen(options.listen);
    const asio::ip::tcp::endpoint ep(where.address, where.port);
    tcp = std::make_unique<asio::ip::tcp::acceptor>(threads.context(0));
    boost::system::error_code ec;
    tcp->open(ep.protocol(), ec);
    if (!ec) tcp->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) tcp->bind(ep, ec);
    if (!ec) tcp->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + options.listen + ": " + ec.message());
    const auto bound = tcp->local_endpoint();
    tcp_addr = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                       : bound.address().to_string();
    tcp_addr += ":" + std::to_string(bound.port());
  }
  if (!options.unix_socket.empty()) {
    clear_stale_unix_socket(options.unix_socket);
    local = std::make_unique<asio::local::stream_protocol::acceptor>(
        threads.context(threads.size() - 1));
    boost::system::error_code ec;
    const asio::local::stream_protocol::endpoint ep(options.unix_socket);
    local->open(ep.protocol(), ec);
    if (!ec) local->bind(ep, ec);
    if (!ec) local->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::runtime_error("cannot listen on " + options.unix_socket + ": " + ec.message());
    }
    // The token still guards every request; the mode keeps other users from even connecting.
    ::chmod(options.unix_socket.c_str(), 0660);
    unix_path = options.unix_socket;
  }
  if (!tcp && !local) throw std::runtime_error("nothing to listen on (no TCP address, no socket)");
  if (tcp) spawn_listener(*tcp);
  if (local) spawn_listener(*local);
}

void Server::Impl::stop() {
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    stopped = true;
  }
  stopping = true;
  // Acceptors and streams are touched only on their own threads.
  if (tcp) asio::post(tcp->get_executor(), [this] { tcp->close(); });
  if (local) asio::post(local->get_executor(), [this] { local->close(); });
  std::vector<std::function<void()>> to_close;
  {
    std::lock_guard lock(mu);
    for (auto& [id, close] : closers)
      to_close.push_back(close);
  }
  for (auto& close : to_close)
    close();
  {
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::seconds(5),
                [this] { return closers.empty() && running_listeners == 0; });
  }
  // Blocking calls under way finish (their coroutines resume on the still-running threads).
  pool.join();
  if (!unix_path.empty()) ::unlink(unix_path.c_str());
}

template <class Protocol>
awaitable<void> Server::Impl::accept_loop(asio::basic_socket_acceptor<Protocol>& acceptor) {
  for (;;) {
    asio::io_context& ctx = threads.pick();
    typename Protocol::socket socket(ctx);
    auto [ec] = co_await acceptor.async_accept(socket, as_tuple_awaitable);
    if (stopping || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of fds, most likely: back off instead of spinning, and keep listening.
      SANDFS_LOG(warn) << "http: accept: " << ec.message();
      asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(as_tuple_awaitable);
      continue;
    }
    if constexpr (std::is_same_v<Protocol, asio::ip::tcp>) {
      // A response goes out as a head and a body: with Nagle the body waits for the head's ACK,
      // which a keep-alive client delays (~40 ms per small GET).
      boost::system::error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    }
    auto stream = std::make_shared<beast::basic_stream<Protocol>>(std::move(socket));
    uint64_t id = 0;
    bool busy = false;
    {
      std::lock_guard lock(mu);
      busy = closers.size() >= options.max_connections;
      if (!busy) {
        id = ++next_id;
        std::weak_ptr<beast::basic_stream<Protocol>> weak = stream;
        closers.emplace(id, [weak, ex = stream->get_executor()] {
          asio::post(ex, [weak] {
            if (auto s = weak.lock()) s->close();
          });
        });
      }
    }
    if (busy) {
      // A fresh socket's send buffer is empty: this small reply goes out without blocking.
      static const std::string reply = [] {
        const std::string body =
            R"({"error":{"code":"unavailable","message":"too many connections; retry later"}})";
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
               "Connection: close\r\nRetry-After: 1\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body;
      }();
      ::send(stream->socket().native_handle(), reply.data(), reply.size(),
             MSG_DONTWAIT | MSG_NOSIGNAL);
      boost::system::error_code ignored;
      stream->socket().close(ignored);
      continue;
    }
    asio::co_spawn(ctx, serve(std::move(stream), id), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        SANDFS_LOG(warn) << "http: connection ended by an exception: " << x.what();
      }
    });
  }
}

template <class Protocol>
awaitable<void> Server::Impl::serve(std::shared_ptr<beast::basic_stream<Protocol>> stream_ptr,
                                    uint64_t id) {
  struct Leave {
    Impl* self;
    uint64_t id;
    ~Leave() { self->leave(id); }
  } leave{this, id};
  auto& stream = *stream_ptr;
  beast::flat_buffer buffer;
  // A new connection has header_timeout to send its first request (so sockets opened and left
  // silent cannot hold the connection cap); between requests it may idle for idle_timeout.
  bool first = true;
  for (;;) {
    if (stopping) co_return;
    if (buffer.size() == 0) {
      stream.expires_after(first ? options.header_timeout : options.idle_timeout);
      auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), as_tuple_awaitable);
      if (ec) co_return;
      buffer.commit(n);
    }
    first = false;
    const bool keep = co_await serve_one(stream, buffer);
    if (!keep) break;
  }
  // A lingering close: after refusing a request whose body is still arriving (413, 401, ...),
  // closing at once would answer the client's next segments with a RST, and a RST can discard
  // our reply from the client's receive buffer before it reads it. So stop sending, then read
  // and drop what still comes, for a bounded time and amount.
  boost::system::error_code ignored;
  stream.socket().shutdown(asio::socket_base::shutdown_send, ignored);
  std::vector<char> sink(64 * 1024);
  uint64_t drained = 0;
  stream.expires_after(std::chrono::seconds(2));
  while (!stopping && drained < (uint64_t{64} << 20)) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), as_tuple_awaitable);
    if (ec) break;
    drained += n;
  }
}

template <class Stream>
awaitable<bool> Server::Impl::reply(Stream& stream, const Exchange& x, ApiResponse response) {
  api.count_request(response.status);
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(response.status), x.version};
  res.set(bhttp::field::server, "sandfsd");
  if (!response.content_type.empty()) res.set(bhttp::field::content_type, response.content_type);
  if (!response.allow.empty()) res.set(bhttp::field::allow, response.allow);
  if (response.status == 401) res.set(bhttp::field::www_authenticate, "Bearer realm=\"sandfsd\"");
  const bool keep = x.keep_alive && !x.body_unread && !stopping;
  res.keep_alive(keep);
  if (x.head) {
    res.content_length(response.body.size());
  } else if (response.status != 204) {
    res.body() = std::move(response.body);
    res.prepare_payload();
  }
  stream.expires_after(options.io_timeout);
  if (x.head) {
    bhttp::response_serializer<bhttp::string_body> sr(res);
    auto [ec, n] = co_await bhttp::async_write_header(stream, sr, as_tuple_awaitable);
    co_return !ec && keep;
  }
  auto [ec, n] = co_await bhttp::async_write(stream, res, as_tuple_awaitable);
  co_return !ec && keep;
}

template <class Stream>
awaitable<bool> Server::Impl::send_continue(Stream& stream, Exchange& x) {
  if (!x.expect_continue) co_return true;
  x.expect_continue = false;
  bhttp::response<bhttp::empty_body> res{bhttp::status::continue_, x.version};
  stream.expires_after(options.io_timeout);
  auto [ec, n] = co_await bhttp::async_write(stream, res, as_tuple_awaitable);
  co_return !ec;
}

template <class Stream>
awaitable<bool> Server::Impl::serve_one(Stream& stream, beast::flat_buffer& buffer) {
  bhttp::request_parser<bhttp::empty_body> header;
  header.header_limit(header_limit);
  header.body_limit(boost::none);  // limits are per route, checked below
  stream.expires_after(options.header_timeout);
  {
    auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, header, as_tuple_awaitable);
    if (ec) {
      Exchange x;
      x.keep_alive = false;
      if (ec == bhttp::error::header_limit) {
        co_await reply(stream, x,
                       error_response(431, "invalid_request", "the request header is over 16 KiB"));
      } else if (ec != beast::error::timeout && ec != asio::error::eof &&
                 ec != bhttp::error::end_of_stream && ec != asio::error::connection_reset &&
                 ec != asio::error::operation_aborted) {
        co_await reply(
            stream, x,
            error_response(400, "invalid_request", "malformed HTTP request: " + ec.message()));
      }
      co_return false;
    }
  }
  const auto& req = header.get();
  Exchange x;
  x.version = req.version();
  x.keep_alive = req.keep_alive();
  x.body_unread = !header.is_done();
  x.expect_continue = beast::iequals(req[bhttp::field::expect], "100-continue");

  ApiRequest request;
  request.method = parse_method(req.method_string());
  x.head = request.method == Method::head;
  const std::string_view target = req.target();
  const auto [path, query_text] = split_target(target);

  if (auto rest = strip_msb_prefix(path, options.msb_prefix)) {
    if (!bearer_matches(req[bhttp::field::authorization], token)) {
      co_return co_await reply(stream, x,
                               msb_error_response(401, "unauthorized",
                                                  "a bearer token is required (Authorization: "
                                                  "Bearer <sandfsd serve's token>)"));
    }
    co_return co_await serve_msb(stream, buffer, header, x, request.method, *rest);
  }

  auto matched = match_route(path);
  const bool public_route = matched && matched->route == Route::healthz;
  if (!public_route && !bearer_matches(req[bhttp::field::authorization], token)) {
    co_return co_await reply(stream, x,
                             error_response(401, "unauthorized",
                                            "a bearer token is required (Authorization: Bearer "
                                            "<the token in the data directory's token file>)"));
  }
  if (!matched) co_return co_await reply(stream, x, error_response(matched.error()));
  request.match = std::move(*matched);
  if (request.match.route == Route::none) {
    co_return co_await reply(
        stream, x, error_response(404, "route_not_found", "no such route: " + std::string(path)));
  }
  if (!method_allowed(request.match.route, request.method)) {
    ApiResponse r =
        error_response(405, "method_not_allowed",
                       std::string(req.method_string()) + " is not served on " + std::string(path));
    r.allow = allowed_methods(request.match.route);
    co_return co_await reply(stream, x, std::move(r));
  }
  auto query = Query::parse(query_text);
  if (!query) co_return co_await reply(stream, x, error_response(query.error()));
  request.query = std::move(*query);

  if (is_file_upload(request)) {
    auto parents = request.query.flag("parents", false);
    if (!parents) co_return co_await reply(stream, x, error_response(parents.error()));
    auto open = [this, &request, p = *parents]() -> volumes::Outcome<OpenedUpload> {
      auto file = volumes::normalize_volume_path(request.match.file_path);
      if (!file) return file.error();
      auto files = api.files(request.match.name);
      if (!files) return files.error();
      auto writer = (*files)->open_write(*file, p);
      if (!writer) return writer.error();
      return OpenedUpload{std::move(*writer), request.match.name};
    };
    co_return co_await upload(stream, buffer, header, x, std::move(open), false);
  }

  // Every other body is small (JSON or nothing): read it whole, within max_body_bytes.
  {
    std::optional<bool> failed =
        co_await read_small_body(stream, buffer, header, x, false, request.body);
    if (failed) co_return *failed;
  }

  if (is_file_download(request)) {
    auto open = [this, &request]() -> volumes::Outcome<volumes::VolumeFiles::ReadHandle> {
      auto file = volumes::normalize_volume_path(request.match.file_path);
      if (!file) return file.error();
      auto files = api.files(request.match.name);
      if (!files) return files.error();
      return (*files)->open_read(*file);
    };
    co_return co_await download(stream, x, std::move(open), false,
                                request.match.file_path + " in volume " + request.match.name);
  }

  auto handle = [this, &request] { return api.handle(request); };
  ApiResponse response = co_await pool.run(std::move(handle));
  co_return co_await reply(stream, x, std::move(response));
}

template <class Stream>
awaitable<std::optional<bool>> Server::Impl::read_small_body(
    Stream& stream, beast::flat_buffer& buffer, bhttp::request_parser<bhttp::empty_body>& header,
    Exchange& x, bool msb, std::string& body) {
  if (!x.body_unread) co_return std::nullopt;
  const auto too_large = [this, msb] {
    return error_for(
        msb, 413, "payload_too_large",
        "the request body is over " + std::to_string(options.max_body_bytes) + " bytes");
  };
  const auto length = header.content_length();
  if (length && *length > options.max_body_bytes) {
    co_return co_await reply(stream, x, too_large());
  }
  if (!co_await send_continue(stream, x)) co_return false;
  bhttp::request_parser<bhttp::string_body> full(std::move(header));
  full.body_limit(options.max_body_bytes);
  stream.expires_after(options.io_timeout);
  auto [ec, n] = co_await bhttp::async_read(stream, buffer, full, as_tuple_awaitable);
  if (ec == bhttp::error::body_limit) co_return co_await reply(stream, x, too_large());
  if (ec) co_return false;
  x.body_unread = false;
  body = std::move(full.get().body());
  co_return std::nullopt;
}

template <class Stream>
awaitable<bool> Server::Impl::serve_msb(Stream& stream, beast::flat_buffer& buffer,
                                        bhttp::request_parser<bhttp::empty_body>& header,
                                        Exchange& x, Method method, std::string_view route_path) {
  const auto& req = header.get();
  auto matched = match_msb_route(route_path);
  if (!matched) co_return co_await reply(stream, x, msb_error_response(matched.error()));
  MsbRequest request;
  request.method = method;
  request.match = std::move(*matched);
  if (request.match.route == MsbRoute::none) {
    co_return co_await reply(
        stream, x,
        msb_error_response(
            404, "route_not_found",
            "no such route: " + std::string(req.target().substr(0, req.target().find('?')))));
  }
  if (!msb_method_allowed(request.match.route, method)) {
    ApiResponse r = msb_error_response(
        405, "method_not_allowed",
        std::string(req.method_string()) + " is not served on " + std::string(route_path));
    r.allow = msb_allowed_methods(request.match.route);
    co_return co_await reply(stream, x, std::move(r));
  }
  // The two headers of the file routes; a repeated one is ambiguous, so refused.
  std::optional<ApiResponse> repeated;
  const auto take = [&req, &repeated](std::string_view name, std::string_view code,
                                      std::optional<std::string>& slot) {
    const auto [first, last] = req.equal_range(name);
    if (first == last) return;
    if (std::next(first) != last) {
      repeated = msb_error_response(400, code,
                                    "the " + std::string(name) + " header is given more than once");
      return;
    }
    slot = std::string(first->value());
  };
  take("x-msb-file-path", "invalid_volume_path", request.path_header);
  take("x-msb-file-recursive", "invalid_request", request.recursive_header);
  if (repeated) co_return co_await reply(stream, x, std::move(*repeated));

  if (is_msb_upload(request)) {
    auto open = [this, &request]() -> volumes::Outcome<OpenedUpload> {
      auto up = msb.open_write(request);
      if (!up) return up.error();
      return OpenedUpload{std::move(up->writer), std::move(up->volume)};
    };
    co_return co_await upload(stream, buffer, header, x, std::move(open), true);
  }
  {
    std::optional<bool> failed =
        co_await read_small_body(stream, buffer, header, x, true, request.body);
    if (failed) co_return *failed;
  }
  if (is_msb_download(request)) {
    auto open = [this, &request] { return msb.open_read(request); };
    co_return co_await download(stream, x, std::move(open), true,
                                "a file (msb API) in volume " + request.match.id);
  }
  auto handle = [this, &request] { return msb.handle(request); };
  ApiResponse response = co_await pool.run(std::move(handle));
  co_return co_await reply(stream, x, std::move(response));
}

template <class Stream, class Open>
awaitable<bool> Server::Impl::download(Stream& stream, Exchange& x, Open open, bool msb,
                                       std::string what) {
  using Handle = volumes::Outcome<volumes::VolumeFiles::ReadHandle>;
  Handle opened = co_await pool.run(std::move(open));
  if (!opened) co_return co_await reply(stream, x, error_for(msb, opened.error()));
  const volumes::VolumeFiles::ReadHandle handle = std::move(*opened);
  const int fd = handle.fd.get();
  const uint64_t size = handle.size;

  api.count_request(200);
  bhttp::response<bhttp::buffer_body> res{bhttp::status::ok, x.version};
  res.set(bhttp::field::server, "sandfsd");
  res.set(bhttp::field::content_type, "application/octet-stream");
  res.content_length(size);
  const bool keep = x.keep_alive && !stopping;
  res.keep_alive(keep);
  res.body().data = nullptr;
  res.body().more = true;
  bhttp::response_serializer<bhttp::buffer_body> sr(res);
  stream.expires_after(options.io_timeout);
  {
    auto [ec, n] = co_await bhttp::async_write_header(stream, sr, as_tuple_awaitable);
    if (ec) co_return false;
  }
  std::vector<char> chunk(static_cast<size_t>(std::min<uint64_t>(file_chunk, size > 0 ? size : 1)));
  io::Ring* ring = io::Ring::current_or_null();
  uint64_t offset = 0;
  while (offset < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), size - offset));
    const iovec iov{chunk.data(), want};
    long got = 0;
    if (ring != nullptr) {
      Result<size_t> r = co_await ring->preadv(fd, std::span<const iovec>(&iov, 1), offset);
      got = r ? static_cast<long>(*r) : -r.error();
    } else {
      auto read = [fd, iov, offset]() -> long {
        const ssize_t n = ::preadv(fd, &iov, 1, static_cast<off_t>(offset));
        return n < 0 ? -errno : static_cast<long>(n);
      };
      got = co_await pool.run(std::move(read));
    }
    if (got <= 0) {
      // The file shrank or failed under us after the header promised `size` bytes: the only
      // honest thing left is to cut the connection, so the client sees a short body.
      SANDFS_LOG(warn) << "http: download of " << what << " ended at byte " << offset << " of "
                       << size;
      co_return false;
    }
    res.body().data = chunk.data();
    res.body().size = static_cast<size_t>(got);
    res.body().more = true;
    stream.expires_after(options.io_timeout);
    auto [ec, n] = co_await bhttp::async_write(stream, sr, as_tuple_awaitable);
    if (ec && ec != bhttp::error::need_buffer) co_return false;
    offset += static_cast<uint64_t>(got);
  }
  res.body().data = nullptr;
  res.body().size = 0;
  res.body().more = false;
  stream.expires_after(options.io_timeout);
  auto [ec, n] = co_await bhttp::async_write(stream, sr, as_tuple_awaitable);
  co_return !ec && keep;
}

template <class Stream, class Open>
awaitable<bool> Server::Impl::upload(Stream& stream, beast::flat_buffer& buffer,
                                     bhttp::request_parser<bhttp::empty_body>& header, Exchange& x,
                                     Open open, bool msb) {
  const auto too_large = [this, msb] {
    return error_for(msb, 413, "payload_too_large",
                     "the upload is over " + std::to_string(options.max_upload_bytes) + " bytes");
  };
  const auto length = header.content_length();
  if (length && *length > options.max_upload_bytes) {
    co_return co_await reply(stream, x, too_large());
  }

  volumes::Outcome<OpenedUpload> opened = co_await pool.run(std::move(open));
  std::shared_ptr<volumes::VolumeFiles::Writer> writer;
  std::string volume;
  std::optional<ApiResponse> failure;
  if (opened) {
    writer = std::move(opened->writer);
    volume = std::move(opened->volume);
  } else {
    failure = error_for(msb, opened.error());
    // A client waiting for 100 Continue sends no body: answer at once (and close).
    if (x.expect_continue) co_return co_await reply(stream, x, std::move(*failure));
  }

  // After a failure the rest of the body is still read (and dropped), within the upload limit,
  // so the reply goes out on a connection in step: a client streaming its body (the SDKs'
  // writeStream) sees the error rather than a connection closed under it.
  uint64_t total = 0;
  if (x.body_unread) {
    if (!co_await send_continue(stream, x)) co_return false;
    bhttp::request_parser<bhttp::buffer_body> body(std::move(header));
    body.body_limit(options.max_upload_bytes);
    std::vector<char> chunk(file_chunk);
    while (!body.is_done()) {
      body.get().body().data = chunk.data();
      body.get().body().size = chunk.size();
      stream.expires_after(options.io_timeout);
      auto [ec, n] = co_await bhttp::async_read(stream, buffer, body, as_tuple_awaitable);
      if (ec == bhttp::error::body_limit) co_return co_await reply(stream, x, too_large());
      if (ec && ec != bhttp::error::need_buffer) co_return false;  // the writer discards
      const size_t got = chunk.size() - body.get().body().size;
      if (got == 0 || failure) continue;
      total += got;
      auto write = [writer, &chunk, got] {
        return writer->write(std::as_bytes(std::span<const char>(chunk.data(), got)));
      };
      auto wrote = co_await pool.run(std::move(write));
      if (!wrote) {
        failure = error_for(msb, wrote.error());
        // Dropping the writer deletes its temporary (a syscall): on the pool, not the loop.
        auto drop = [w = std::move(writer)]() mutable {
          w.reset();
          return true;
        };
        co_await pool.run(std::move(drop));
      }
    }
    x.body_unread = false;
  }
  if (failure) co_return co_await reply(stream, x, std::move(*failure));
  auto commit = [this, writer, &volume] {
    auto done = writer->commit();
    api.contents_changed(volume);
    return done;
  };
  auto committed = co_await pool.run(std::move(commit));
  if (!committed) co_return co_await reply(stream, x, error_for(msb, committed.error()));
  if (msb) co_return co_await reply(stream, x, MsbApi::uploaded(total));
  ApiResponse ok;
  ok.status = 201;
  ok.body = "{\"size\":" + std::to_string(total) + "}";
  co_return co_await reply(stream, x, std::move(ok));
}

Server::Server(volumes::VolumeStore& store, volumes::MountManager& mounts, io::IoThreads& threads,
               std::string token, ServerOptions options)
    : impl_(std::make_unique<Impl>(store, mounts, threads, std::move(token), std::move(options))) {}

Server::~Server() {
  stop();
}

void Server::start() {
  impl_->start();
}

void Server::stop() {
  impl_->stop();
}

std::string Server::tcp_address() const {
  return impl_->tcp_addr;
}

std::string Server::unix_address() const {
  return impl_->unix_path;
}

}  // namespace sandfs::http
