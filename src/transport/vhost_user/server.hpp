// VhostUserServer: a listening vhost-user socket that serves every frontend that connects.
//
// Each accepted connection becomes a Device with a Filesystem of its own, made by the factory
// (a guest's FUSE_INIT .. DESTROY is one Session; a reconnecting VMM starts a new one). When a
// frontend disconnects, the server keeps listening for the next. One process may run many
// servers (one per socket) on the same IoThreads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/local/stream_protocol.hpp>

#include "core/filesystem.hpp"
#include "core/io/io_threads.hpp"
#include "transport/vhost_user/device.hpp"

namespace sandfs::vhost_user {

// Makes the Filesystem for one new connection, or returns null with `error` set.
using FilesystemFactory = std::function<std::shared_ptr<Filesystem>(std::string& error)>;

struct ServerTotals {
  uint64_t connections = 0;
  uint64_t requests = 0;
  uint64_t bad_chains = 0;
};

class VhostUserServer {
 public:
  VhostUserServer(io::IoThreads& threads, std::string socket_path, FilesystemFactory factory,
                  DeviceOptions options);
  ~VhostUserServer();
  VhostUserServer(const VhostUserServer&) = delete;
  VhostUserServer& operator=(const VhostUserServer&) = delete;

  // Creates the socket (replacing a stale socket file nobody listens on; refusing anything else
  // at that path) and starts accepting. Throws std::system_error with a clear message.
  void start();
  // Stops accepting and ends every connection (their Sessions shut down). Blocks until done.
  void stop();

  const std::string& socket_path() const { return path_; }
  ServerTotals totals() const;

 private:
  Task<void> accept_loop();
  Task<void> serve(boost::asio::local::stream_protocol::socket socket, uint64_t number);

  io::IoThreads& threads_;
  std::string path_;
  FilesystemFactory factory_;
  DeviceOptions options_;
  boost::asio::io_context& accept_ctx_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;

  mutable std::mutex mu_;
  std::vector<std::weak_ptr<Device>> devices_;
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> finished_requests_{0};
  std::atomic<uint64_t> finished_bad_chains_{0};
  std::atomic<unsigned> live_{0};
  std::atomic<bool> accept_closed_{false};
  bool stopped_ = false;  // guarded by mu_
};

}  // namespace sandfs::vhost_user
