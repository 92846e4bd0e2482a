// Serves one Session on a mounted /dev/fuse connection.
//
// Thread model (one io_context per thread was measured to be several times faster than one
// io_context run by several threads):
//   * N threads, each with its own boost::asio::io_context, io::Ring (+ Ring::Scope) and
//     /dev/fuse fd. Thread 0 uses the mount fd; the others a fresh open of /dev/fuse attached to
//     the same connection with FUSE_DEV_IOC_CLONE, so the kernel spreads requests over them and no
//     fd is shared between threads.
//   * Per fd, a reader coroutine reads one request per async_read_some into a buffer from the
//     thread's pool and co_spawns a handler coroutine that owns the buffer and its ReplyChannel.
//     The reader goes straight back to reading, so a slow request never holds back others.
//   * Nothing on the request path takes a lock or allocates in the steady state (buffers are
//     recycled per thread; Asio recycles coroutine frames per thread).
//
// Stopping: the kernel failing a read with ENODEV (the filesystem was unmounted) stops every
// thread; so does stop(), a fatal read error, or the Session reporting FUSE_DESTROY. Readers stop,
// requests in flight finish and reply, then thread 0 runs Session::shutdown() once and every
// thread exits. The owner then calls wait().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/io/ring.hpp"
#include "core/session.hpp"
#include "transport/fuse_dev/unique_fd.hpp"

namespace sandfs::fuse_dev {

struct FuseDevServerOptions {
  unsigned threads = 2;
  io::Ring::Mode ring_mode = io::Ring::Mode::automatic;
  unsigned ring_entries = 256;
  // Idle request buffers each thread keeps for reuse; more are freed.
  size_t max_free_buffers = 64;
  // Opened and cloned for threads 1..N-1.
  std::string device_path = "/dev/fuse";
  // Makes the fd for threads 1..N-1 from the mount fd; empty: open device_path and
  // FUSE_DEV_IOC_CLONE it. Tests substitute sockets for /dev/fuse here.
  std::function<UniqueFd(int mount_fd)> clone_fd;
};

class FuseDevServer {
 public:
  enum class StopReason {
    running,
    unmounted,  // a read returned ENODEV: the filesystem is gone (normal end)
    aborted,    // a read returned ECONNABORTED: someone aborted the connection (umount -f,
                // /sys/fs/fuse/connections/N/abort); the dead mount is still there
    destroyed,  // the Session handled FUSE_DESTROY
    requested,  // stop() was called
    failed,     // an unexpected read error
  };

  struct Counters {
    uint64_t requests = 0;             // messages read from /dev/fuse
    uint64_t replies = 0;              // replies written
    uint64_t replies_interrupted = 0;  // replies the kernel refused with ENOENT
    uint64_t replies_failed = 0;       // other reply write errors
    uint64_t buffer_allocations = 0;   // request buffers allocated over the whole run
  };

  FuseDevServer(Session& session, UniqueFd mount_fd, unsigned threads);
  FuseDevServer(Session& session, UniqueFd mount_fd, FuseDevServerOptions options);
  // Stops and waits.
  ~FuseDevServer();
  FuseDevServer(const FuseDevServer&) = delete;
  FuseDevServer& operator=(const FuseDevServer&) = delete;

  // Clones the fds and starts the threads; returns once every thread has set up its io ring and
  // started reading. Throws std::system_error if a /dev/fuse clone or a thread cannot be set up
  // (then nothing is left running).
  void start();

  // Asks all threads to stop reading; requests in flight still finish. Thread-safe, idempotent.
  void stop() { request_stop(StopReason::requested); }

  // Blocks until every thread has exited. Session::shutdown() has run by then.
  void wait();

  // Called once, from a server thread, when the last thread is about to exit (so a main loop
  // blocked in poll() can wake up and call wait()). Set before start().
  void on_finished(std::function<void()> callback) { on_finished_ = std::move(callback); }

  StopReason stop_reason() const { return reason_.load(std::memory_order_acquire); }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  // Valid after start(): whether every thread's io::Ring runs on io_uring.
  bool uses_io_uring() const { return uses_io_uring_; }
  unsigned threads() const { return options_.threads; }
  Counters counters() const;

 private:
  class Worker;

  void request_stop(StopReason reason);
  // On thread 0: one more worker has drained.
  void worker_finished();

  Session& session_;
  FuseDevServerOptions options_;
  UniqueFd mount_fd_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::function<void()> on_finished_;
  std::atomic<StopReason> reason_{StopReason::running};
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  bool joined_ = false;
  bool uses_io_uring_ = false;
  unsigned unfinished_ = 0;  // touched on thread 0 only
};

const char* to_string(FuseDevServer::StopReason reason);

}  // namespace sandfs::fuse_dev
