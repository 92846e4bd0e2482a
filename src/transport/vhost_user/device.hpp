// Device: one vhost-user-fs frontend connection, from the first GET_FEATURES to the disconnect.
//
// The control loop (run()) reads the frontend's messages one at a time and keeps the device
// state: negotiated features, the guest memory table, and per vring its size, addresses, base
// index and eventfds. A vring starts when it has everything and is enabled; it then gets a
// QueueRunner on one of the IoThreads (queues spread round-robin), which awaits the kick eventfd,
// pops descriptor chains and starts one coroutine per request on that thread. GET_VRING_BASE,
// RESET_OWNER/RESET_DEVICE and a disconnect stop the queues, waiting for their requests in
// flight so no reply lands in guest memory after the frontend was told the ring stopped.
//
// Queue 0 is virtio-fs's high-priority queue (FORGET, INTERRUPT); queues 1..N carry requests.
// Both go to the same Session: the difference is only which requests the guest puts there.
//
// Faults are kept apart (STYLE.md): a protocol fault from the frontend (a malformed message, an
// impossible ring) ends this connection with a log line; a bad descriptor chain is completed
// with 0 bytes and counted; neither reaches the Filesystem or another connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/filesystem.hpp"
#include "core/io/io_threads.hpp"
#include "core/session.hpp"
#include "transport/vhost_user/guest_memory.hpp"
#include "transport/vhost_user/message_channel.hpp"

namespace sandfs::vhost_user {

struct DeviceOptions {
  // Request queues offered (GET_QUEUE_NUM reports these plus the high-priority queue).
  unsigned request_queues = 1;
  SessionOptions session;
};

// What the transport counts per connection (and adds up per server).
struct DeviceCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bad_chains{0};
  std::atomic<uint64_t> notifications{0};
};

class Device : public std::enable_shared_from_this<Device> {
 public:
  Device(MessageChannel channel, std::shared_ptr<Filesystem> fs, DeviceOptions options,
         io::IoThreads& threads, std::string name);
  ~Device();

  // Serves the connection until the frontend goes away or breaks the protocol; then stops every
  // queue and shuts the Session down (Filesystem::destroy when DESTROY never came).
  Task<void> run();

  // Thread-safe: ends the connection as if the frontend had hung up.
  void disconnect();

  const DeviceCounters& counters() const { return counters_; }
  Session& session() { return *session_; }

 private:
  class Queue;
  struct Vring;

  // Handles one message; false ends the connection (the reason is logged).
  Task<bool> handle(Message& m);
  Task<void> stop_queue(Vring& v);
  Task<void> stop_all_queues();
  void maybe_start(Vring& v);
  Vring* vring(uint64_t index);

  MessageChannel channel_;
  std::shared_ptr<Filesystem> fs_;
  DeviceOptions options_;
  io::IoThreads& threads_;
  std::string name_;
  std::shared_ptr<Session> session_;
  DeviceCounters counters_;

  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  bool features_set_ = false;
  std::shared_ptr<const GuestMemory> memory_;
  std::vector<std::unique_ptr<Vring>> vrings_;
};

}  // namespace sandfs::vhost_user
