// Server: the admin API over HTTP/1.1 (Boost.Beast, C++20 coroutines), on TCP and optionally a
// Unix socket. Beast lives only in server.cpp.
//
// ## Threads
// Connections run on the io::IoThreads contexts the mounts use (one coroutine per connection,
// pinned to one thread); every call into the volume service runs on the server's own blocking
// pool and the coroutine awaits it, so a slow mkfs or a tree walk never stalls the loop. File
// downloads read their fd through the thread's io::Ring (io_uring) in chunks.
//
// ## Limits (each client is untrusted)
// * header_timeout bounds the time from a request's first byte to the end of its header (a
//   client trickling a header a byte at a time is cut off), idle_timeout the wait for the next
//   request on a keep-alive connection, io_timeout each read of a body chunk and each write.
// * Headers are at most 16 KiB (431). JSON bodies at most max_body_bytes (413); uploads are
//   streamed to the volume in chunks and may be up to max_upload_bytes (413).
// * At most max_connections connections; the next one gets 503 and is closed.
//
// ## The microsandbox API
// Targets under options.msb_prefix go to MsbApi (msb_api.hpp) instead of the router: the same
// token, limits, blocking pool and content streaming, with that API's routes and error envelope.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace sandfs::io {
class IoThreads;
}
namespace sandfs::volumes {
class VolumeStore;
class MountManager;
}  // namespace sandfs::volumes

namespace sandfs::http {

struct ServerOptions {
  std::string listen = "127.0.0.1:7270";  // HOST:PORT ([v6]:PORT); empty: no TCP listener
  std::string unix_socket;                // empty: none
  uint64_t max_body_bytes = uint64_t{1} << 20;
  uint64_t max_upload_bytes = uint64_t{16} << 30;
  unsigned max_connections = 512;
  unsigned blocking_threads = 4;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds io_timeout{30'000};
  // The microsandbox SDKs' volume API (msb_api.hpp) under this path prefix; empty: not served.
  std::string msb_prefix = "/msb";
  // The volume GET <prefix>/v1/volumes/default answers with; empty: a 404 volume_not_found.
  std::string msb_default_volume;
};

class Server {
 public:
  Server(volumes::VolumeStore& store, volumes::MountManager& mounts, io::IoThreads& threads,
         std::string token, ServerOptions options);
  ~Server();  // stop()s
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts accepting. Throws std::runtime_error naming the address on failure.
  void start();
  // Stops accepting, closes every connection, and waits (a few seconds at most) for their
  // coroutines and for blocking calls under way. Idempotent. Not from a connection's thread.
  void stop();

  // Where it listens: "127.0.0.1:7270" (the bound port when 0 was asked), the Unix socket path.
  std::string tcp_address() const;
  std::string unix_address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandfs::http
