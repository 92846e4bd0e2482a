// A vhost-user frontend for tests and benchmarks: a simulated VMM and guest driver that talk to a
// sandfs vhost-user socket the way QEMU and a Linux virtio-fs guest do.
//
//   GuestRam        guest RAM: one memfd per region, mapped here; the "user address" of a region
//                   is its address in this process, as a VMM's is. A first-fit allocator hands
//                   out buffers (alternating between regions, so chains span both).
//   DriverQueue     the driver side of one split ring in that RAM: descriptors, available ring,
//                   used ring, kick and call eventfds, EVENT_IDX on both sides.
//   Frontend        one connection: the control messages (each a method, each checked), the
//                   QEMU-like handshake(), FUSE requests as descriptor chains (several in flight
//                   per queue), and raw access to messages, descriptors and rings for tests that
//                   feed the backend malformed input.
//   FuseGuest       typed FUSE calls on top (INIT, LOOKUP, GETATTR, MKDIR, CREATE, ...).
//
// Nothing here is thread-safe: one thread drives one Frontend. Every wait has a deadline: a
// backend that never answers makes a call throw FrontendError, never hang. The structs are the
// backend's own wire structs (transport/vhost_user/protocol.hpp, virtio_ring.hpp) and the kernel
// FUSE ABI (core/protocol/fuse_kernel.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/protocol/fuse_kernel.hpp"
#include "core/unique_fd.hpp"
#include "transport/vhost_user/protocol.hpp"
#include "transport/vhost_user/virtio_ring.hpp"

namespace sandfs::test::vhost {

using Milliseconds = std::chrono::milliseconds;

// The backend did something a frontend cannot go on from: closed the connection, refused a
// message, answered garbage, or did not answer in time.
class FrontendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RegionSpec {
  uint64_t guest_phys_addr = 0;
  uint64_t size = 0;
};

// ---- guest RAM ----------------------------------------------------------------------------------

class GuestRam {
 public:
  struct Region {
    uint64_t guest_phys_addr = 0;
    uint64_t size = 0;
    std::byte* host = nullptr;  // also the region's user address
    UniqueFd fd;                // the memfd
  };

  // `name` labels the memfds (visible in /proc/PID/maps as "/memfd:NAME").
  GuestRam(std::span<const RegionSpec> regions, const std::string& name);
  ~GuestRam();
  GuestRam(const GuestRam&) = delete;
  GuestRam& operator=(const GuestRam&) = delete;

  const std::vector<Region>& regions() const { return regions_; }

  // This process's pointer to guest physical [gpa, gpa + len), which must lie in one region
  // (std::out_of_range otherwise).
  std::byte* host(uint64_t gpa, size_t len) const;
  uint64_t user_addr(uint64_t gpa) const;
  void write(uint64_t gpa, std::span<const std::byte> bytes) const;
  void read(uint64_t gpa, std::span<std::byte> out) const;

  // Guest memory for `len` bytes aligned to `align`, or nullopt when full. Regions are tried
  // round-robin starting after the previous allocation's; `region` pins one.
  std::optional<uint64_t> try_alloc(size_t len, size_t align = 64,
                                    std::optional<size_t> region = std::nullopt);
  uint64_t alloc(size_t len, size_t align = 64, std::optional<size_t> region = std::nullopt);
  void free(uint64_t gpa);

 private:
  struct Arena {
    std::map<uint64_t, uint64_t> free;  // start gpa -> length
  };
  std::vector<Region> regions_;
  std::vector<Arena> arenas_;
  std::unordered_map<uint64_t, std::pair<uint64_t, uint64_t>> allocated_;  // gpa -> (start, len)
  size_t next_region_ = 0;
};

// ---- one split ring, driver side ------------------------------------------------------------

struct Buffer {
  uint64_t gpa = 0;
  uint32_t len = 0;
  bool writable = false;
};

class DriverQueue {
 public:
  DriverQueue(GuestRam& ram, unsigned index, uint16_t size, bool event_idx);
  ~DriverQueue();
  DriverQueue(const DriverQueue&) = delete;
  DriverQueue& operator=(const DriverQueue&) = delete;

  unsigned index() const { return index_; }
  uint16_t size() const { return size_; }
  uint64_t desc_gpa() const { return desc_gpa_; }
  uint64_t avail_gpa() const { return avail_gpa_; }
  uint64_t used_gpa() const { return used_gpa_; }
  int kick_fd() const { return kick_.get(); }
  int call_fd() const { return call_.get(); }
  // Replaces the kick or call eventfd (a reconnect, or a test giving the backend another fd).
  void set_kick_fd(UniqueFd fd) { kick_ = std::move(fd); }
  void set_call_fd(UniqueFd fd) { call_ = std::move(fd); }

  // Writes `buffers` as one chain (readable ones first, as given), directly into the descriptor
  // table or as an indirect table, and tracks it until the backend returns its head. nullopt
  // when too few descriptors (or no room for the indirect table) are free.
  std::optional<uint16_t> add_chain(std::span<const Buffer> buffers, bool indirect);
  // Offers `head` in the next available-ring slot (release order: the chain is visible first).
  void publish(uint16_t head);
  // Kicks when the backend asked for it (EVENT_IDX avail_event, or no VRING_USED_F_NO_NOTIFY),
  // or always with `force`. Returns whether it kicked.
  bool kick(bool force = false);

  // Collects new used-ring entries. Entries for chains from add_chain free their descriptors and
  // land in completed(); any other head (raw chains, nonsense) lands in raw_used().
  void harvest();
  // Waits until the used ring moves or `deadline` passes (then false). Arms the interrupt
  // (used_event, or VRING_AVAIL_F_NO_INTERRUPT left clear) before sleeping on the call eventfd.
  bool wait_for_used(std::chrono::steady_clock::time_point deadline);
  // Asks for an interrupt at the next used entry (EVENT_IDX: used_event = what we have seen).
  void arm_interrupt();

  // head -> bytes written, for chains from add_chain; the caller erases what it consumes.
  std::unordered_map<uint16_t, uint32_t>& completed() { return completed_; }
  std::deque<vhost_user::vring_used_elem>& raw_used() { return raw_used_; }

  // ---- raw access, for malformed input ----
  // Takes `count` descriptor indices out of the free list (nullopt when too few are free); the
  // caller writes them with write_desc and returns them with give_back once done with them.
  std::optional<std::vector<uint16_t>> take_descriptors(size_t count);
  void give_back(std::span<const uint16_t> indices);
  void write_desc(uint16_t index, const vhost_user::vring_desc& d);
  // Writes `head` (any value) into the next available slot and publishes it.
  void publish_raw(uint16_t head) { publish(head); }
  // Sets avail->idx (release) without writing ring slots.
  void set_avail_idx(uint16_t idx);
  uint16_t avail_idx() const { return avail_idx_; }
  uint16_t used_idx() const;  // the backend's used->idx now
  uint16_t last_used_idx() const { return last_used_; }
  size_t free_descriptors() const { return free_.size(); }

 private:
  GuestRam& ram_;
  unsigned index_;
  uint16_t size_;
  bool event_idx_;
  uint64_t desc_gpa_ = 0, avail_gpa_ = 0, used_gpa_ = 0;
  UniqueFd kick_, call_;
  uint16_t avail_idx_ = 0;
  uint16_t kicked_avail_ = 0;  // avail_idx_ at the previous kick check
  uint16_t last_used_ = 0;
  std::vector<uint16_t> free_;
  struct Tracked {
    std::vector<uint16_t> descs;
    std::optional<uint64_t> indirect_table;
  };
  std::unordered_map<uint16_t, Tracked> tracked_;
  std::unordered_map<uint16_t, uint32_t> completed_;
  std::deque<vhost_user::vring_used_elem> raw_used_;
};

// ---- FUSE requests and replies ----------------------------------------------------------------

struct FuseReply {
  fuse::fuse_out_header header{};  // zero when the backend wrote fewer than 16 bytes
  std::vector<std::byte> body;     // what followed the header, up to the used length
  uint32_t used_len = 0;           // the used ring's byte count

  int error() const { return -header.error; }  // a positive errno or 0
  // The body as a T (FrontendError when it is shorter).
  template <class T>
  T as() const;
};

template <class T>
struct FuseResult {
  int error = 0;  // 0 or a positive errno
  T value{};
  bool ok() const { return error == 0; }
};

// One FUSE request in flight.
struct Ticket {
  uint64_t unique = 0;
};

// ---- the connection ------------------------------------------------------------------------

struct FrontendOptions {
  // Two regions with a hole between them, as a VMM with RAM below and above a PCI hole has.
  std::vector<RegionSpec> regions = {{0x0, 4u << 20}, {0x100000000, 4u << 20}};
  uint16_t queue_size = 128;  // QEMU's vhost-user-fs default
  // Request queues set up by handshake() (the high-priority queue 0 always is too).
  unsigned request_queues = 1;
  // Features asked for when offered.
  bool event_idx = true;
  bool indirect_desc = true;
  bool reply_ack = true;
  // Chains are written as indirect tables (needs INDIRECT_DESC negotiated); else directly.
  bool use_indirect = false;
  // Kick after every publish even when the backend suppressed kicks.
  bool always_kick = false;
  Milliseconds timeout{5000};
  std::string name = "sandfs-sim";
};

// A message from the backend, or why there was none.
struct Received {
  enum class Status { message, closed, timeout } status = Status::timeout;
  vhost_user::MessageHeader header{};
  std::vector<std::byte> payload;
  std::vector<UniqueFd> fds;
};

class Frontend {
 public:
  // Connects (no messages yet). FrontendError when nothing listens.
  Frontend(const std::string& socket_path, FrontendOptions options = {});
  ~Frontend();
  Frontend(const Frontend&) = delete;
  Frontend& operator=(const Frontend&) = delete;

  // What QEMU does for vhost-user-fs from connect to a running device: features, protocol
  // features, queue count, owner, memory table, and every queue (0 and 1..request_queues) set
  // up and enabled. Every message without a reply of its own asks for REPLY_ACK when it was
  // negotiated, and a refused one throws.
  void handshake();

  // ---- control messages (each checks its reply or ack; throws FrontendError) ----
  uint64_t get_features();
  void set_features(uint64_t features);
  uint64_t get_protocol_features();
  void set_protocol_features(uint64_t features);
  uint64_t get_queue_num();
  void set_owner();
  void reset_owner();
  void set_mem_table();  // this RAM's regions and memfds
  void set_vring_num(unsigned queue, uint32_t num);
  void set_vring_base(unsigned queue, uint32_t base);
  void set_vring_addr(unsigned queue);  // the queue's own rings, as user addresses
  void set_vring_addr(const vhost_user::VringAddr& addr);
  void set_vring_kick(unsigned queue);  // the queue's own eventfd
  void set_vring_call(unsigned queue);
  void set_vring_enable(unsigned queue, bool enable);
  uint32_t get_vring_base(unsigned queue);  // stops the ring; returns the next avail index
  // Sets up one queue (num, base, addr, kick, call, enable) with its rings as they are now.
  void start_queue(unsigned queue, uint16_t base = 0);
  // Closes the socket; the backend tears the connection down. RAM stays mapped here.
  void disconnect();
  // What QEMU does when the VM stops: GET_VRING_BASE on every queue (each answer comes once
  // the ring's requests in flight are done), then disconnect(). Returns the bases.
  std::vector<uint32_t> shutdown();
  bool connected() const { return socket_.valid(); }

  uint64_t features() const { return features_; }
  uint64_t protocol_features() const { return protocol_features_; }
  bool acks() const { return (protocol_features_ & vhost_user::protocol_f_reply_ack) != 0; }

  // ---- raw messages ----
  // One message as one sendmsg: the header says payload.size() unless `size` overrides it.
  void send_message(uint32_t request, uint32_t flags, std::span<const std::byte> payload,
                    std::span<const int> fds = {}, std::optional<uint32_t> size = std::nullopt);
  // Arbitrary bytes (and fds attached to the first of them).
  void send_bytes(std::span<const std::byte> bytes, std::span<const int> fds = {});
  // The next message from the backend within `timeout` (default: the options').
  Received receive(std::optional<Milliseconds> timeout = std::nullopt);
  // Whether the backend closes the connection within `timeout` (messages meanwhile are dropped).
  bool wait_closed(std::optional<Milliseconds> timeout = std::nullopt);
  // Sends a request with NEED_REPLY and returns the backend's ack value (0: success).
  uint64_t send_with_ack(vhost_user::Request request, std::span<const std::byte> payload,
                         std::span<const int> fds = {});

  // ---- FUSE requests ----
  // Queues a FUSE request on `queue`: a readable buffer with fuse_in_header and `args`, a second
  // one with `data` (WRITE payloads), and writable ones for fuse_out_header and
  // `reply_capacity` bytes (none at all for FORGET and BATCH_FORGET, which have no reply). Waits
  // for free descriptors if the queue is full. Kicks.
  Ticket submit(unsigned queue, uint32_t opcode, uint64_t nodeid, std::span<const std::byte> args,
                size_t reply_capacity, std::span<const std::byte> data = {});
  // The reply to `ticket`; FrontendError after the timeout.
  FuseReply wait(Ticket ticket);
  // The reply if it comes within `timeout`; the request stays pending otherwise.
  std::optional<FuseReply> try_wait(Ticket ticket, Milliseconds timeout);
  FuseReply call(unsigned queue, uint32_t opcode, uint64_t nodeid, std::span<const std::byte> args,
                 size_t reply_capacity, std::span<const std::byte> data = {});
  size_t pending() const { return pending_.size(); }

  // ---- raw rings ----
  GuestRam& ram() { return ram_; }
  DriverQueue& queue(unsigned index);
  unsigned queue_count() const { return static_cast<unsigned>(queues_.size()); }
  // Waits until `head` comes back in the raw used entries of `queue`; returns its length.
  std::optional<uint32_t> wait_raw_used(unsigned queue, uint16_t head, Milliseconds timeout);

  const FrontendOptions& options() const { return options_; }

 private:
  struct Pending {
    unsigned queue;
    uint16_t head;
    std::vector<uint64_t> allocations;
    std::optional<uint64_t> out_gpa;  // fuse_out_header; the reply space follows in reply_gpa
    std::optional<uint64_t> reply_gpa;
    size_t reply_capacity;
  };

  void send_expecting_ack(vhost_user::Request request, std::span<const std::byte> payload,
                          std::span<const int> fds = {});
  Received expect_reply(vhost_user::Request request);
  uint64_t expect_u64(vhost_user::Request request);
  FuseReply collect(uint64_t unique, uint32_t used_len);
  // Harvests `queue` and turns completions of pending requests into replies (done_), freeing
  // their descriptors and buffers at once.
  void reap(unsigned queue);

  FrontendOptions options_;
  UniqueFd socket_;
  GuestRam ram_;
  std::vector<std::unique_ptr<DriverQueue>> queues_;
  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  uint64_t next_unique_ = 1;
  std::unordered_map<uint64_t, Pending> pending_;
  std::map<std::pair<unsigned, uint16_t>, uint64_t> by_head_;  // (queue, head) -> unique
  std::unordered_map<uint64_t, FuseReply> done_;
};

// ---- typed FUSE calls ----------------------------------------------------------------------

struct DirEntry {
  uint64_t ino = 0;
  uint64_t off = 0;
  uint32_t type = 0;
  std::string name;
};

struct CreateOut {
  fuse::fuse_entry_out entry{};
  fuse::fuse_open_out open{};
};

// Requests go to request queue `queue` (1 by default); FORGET goes to the high-priority queue 0.
class FuseGuest {
 public:
  explicit FuseGuest(Frontend& frontend, unsigned queue = 1) : f_(frontend), queue_(queue) {}

  void use_queue(unsigned queue) { queue_ = queue; }
  unsigned queue() const { return queue_; }

  // FUSE_INIT as a virtio-fs guest sends it (7.31+); throws unless it succeeds.
  fuse::fuse_init_out init(uint32_t minor = fuse::kernel_minor_version);
  // ENOENT also for a negative entry (a success with node id 0, which the kernel caches).
  FuseResult<fuse::fuse_entry_out> lookup(uint64_t parent, std::string_view name);
  FuseResult<fuse::fuse_attr_out> getattr(uint64_t ino);
  FuseResult<fuse::fuse_entry_out> mkdir(uint64_t parent, std::string_view name,
                                         uint32_t mode = 0755);
  FuseResult<CreateOut> create(uint64_t parent, std::string_view name, uint32_t mode = 0644,
                               uint32_t flags = 02 /* O_RDWR */);
  FuseResult<fuse::fuse_open_out> open(uint64_t ino, uint32_t flags = 02);
  FuseResult<std::vector<std::byte>> read(uint64_t ino, uint64_t fh, uint64_t offset,
                                          uint32_t size);
  FuseResult<uint32_t> write(uint64_t ino, uint64_t fh, uint64_t offset,
                             std::span<const std::byte> data);
  int release(uint64_t ino, uint64_t fh);
  int unlink(uint64_t parent, std::string_view name);
  int rmdir(uint64_t parent, std::string_view name);
  FuseResult<fuse::fuse_open_out> opendir(uint64_t ino);
  FuseResult<std::vector<DirEntry>> readdir(uint64_t ino, uint64_t fh, uint64_t offset = 0,
                                            uint32_t size = 64 * 1024);
  int releasedir(uint64_t ino, uint64_t fh);
  // All entries of directory `ino` (opendir, readdir until empty, releasedir).
  FuseResult<std::vector<DirEntry>> list(uint64_t ino);
  // No reply: waits only for the backend to return the chain.
  void forget(uint64_t ino, uint64_t nlookup);

  // Request bytes (in args) for the ops above, for callers that submit() several at once.
  static std::vector<std::byte> name_arg(std::string_view name);
  template <class T>
  static std::vector<std::byte> arg(const T& value, std::string_view name = {});

 private:
  Frontend& f_;
  unsigned queue_;
};

// ---- inline definitions -----------------------------------------------------------------------

template <class T>
T FuseReply::as() const {
  if (body.size() < sizeof(T)) {
    throw FrontendError("FUSE reply body of " + std::to_string(body.size()) + " bytes, expected " +
                        std::to_string(sizeof(T)));
  }
  T value;
  std::memcpy(&value, body.data(), sizeof value);
  return value;
}

template <class T>
std::vector<std::byte> FuseGuest::arg(const T& value, std::string_view name) {
  std::vector<std::byte> out(sizeof(T) + (name.empty() ? 0 : name.size() + 1));
  std::memcpy(out.data(), &value, sizeof(T));
  if (!name.empty()) std::memcpy(out.data() + sizeof(T), name.data(), name.size());
  return out;
}

}  // namespace sandfs::test::vhost
