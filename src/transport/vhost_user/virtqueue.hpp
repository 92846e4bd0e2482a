// SplitVirtqueue: the device side of one virtio 1.x split ring in guest memory.
//
// The driver (the guest) publishes descriptor chains in the available ring; pop() takes the next
// one, walks and validates it, and returns its buffers as host iovecs (a DescriptorChain). When
// the request is done, push() puts the head into the used ring with the number of bytes written,
// and needs_notify() says whether the driver wants an interrupt (call eventfd) for it.
//
// The guest is hostile and writes the rings while we read them. Hence:
//   - Every guest field is loaded exactly once into a local (an atomic load, or a byte-wise
//     volatile copy where alignment is not guaranteed) and only the local is checked and used.
//   - Every buffer and indirect table is translated through GuestMemory and must lie wholly in one
//     region; nothing outside the guest's regions is ever touched.
//   - Work per pop() is bounded: at most `size` descriptors from the ring's table plus at most
//     max_indirect_entries() from one indirect table, whatever the guest writes.
//   - A malformed chain is reported with its fault and head (PopStatus::bad_chain). Its entry is
//     consumed, so the queue never stalls: the caller counts it and completes it with push(head,
//     0). A ring that cannot be right at all is broken_ring: sticky, nothing more is popped,
//     the connection should be reset. That is avail->idx more than `size` ahead of us, or a
//     chain offered while `size` heads are in flight (the driver reused heads it never got
//     back), which also caps the requests one queue can have us work on at once.
//
// Limits chosen here (the spec leaves them to the device):
//   - Indirect tables may hold up to max(size, 1024) descriptors. The spec bounds a chain by the
//     queue size, but Linux sizes an indirect table by the request's scatter list, which for a
//     1 MiB FUSE request (256 pages plus headers) exceeds QEMU's default vhost-user-fs queue size
//     of 128. 1024 covers any Linux virtio-fs request with room to spare and keeps a pop cheap.
//   - The readable and the writable bytes of one chain are each bounded by
//     VirtqueueConfig::max_chain_bytes (64 MiB by default: a FUSE request with a 1 MiB payload
//     needs a little over 1 MiB; the spec's own bound is 4 GiB in total).
//   - A zero-length buffer descriptor is accepted and skipped (no iovec, its address is not
//     looked at): it is harmless, and the spec does not forbid it. Its WRITE flag still counts
//     for the readable-before-writable order.
//   - The WRITE flag of a descriptor that points to an indirect table is ignored, as the spec
//     requires. A chain may be direct descriptors ending in one INDIRECT descriptor (the spec
//     allows it; Linux only ever sends the INDIRECT one alone).
//
// Not thread-safe: one queue is driven from one thread (pop, push and notification calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "core/expected.hpp"
#include "transport/vhost_user/descriptor_chain.hpp"
#include "transport/vhost_user/guest_memory.hpp"

namespace sandfs::vhost_user {

enum class RingAddressSpace : uint8_t {
  user,            // the frontend's virtual addresses (VHOST_USER_SET_VRING_ADDR)
  guest_physical,  // guest physical addresses (a simulator, tests)
};

struct VirtqueueConfig {
  static constexpr uint64_t default_max_chain_bytes = 64u << 20;

  uint32_t size = 0;  // VHOST_USER_SET_VRING_NUM: a power of 2, at most 32768
  uint64_t desc_addr = 0;
  uint64_t avail_addr = 0;
  uint64_t used_addr = 0;
  RingAddressSpace address_space = RingAddressSpace::user;
  uint16_t last_avail_idx = 0;                         // VHOST_USER_SET_VRING_BASE
  bool event_idx = false;                              // VIRTIO_RING_F_EVENT_IDX negotiated
  bool indirect_desc = false;                          // VIRTIO_RING_F_INDIRECT_DESC negotiated
  uint64_t max_chain_bytes = default_max_chain_bytes;  // per direction
};

enum class QueueSetupFault : uint8_t {
  bad_size,            // 0, not a power of 2, or above 32768
  misaligned,          // a ring's address (guest or host) breaks its required alignment
  desc_out_of_range,   // the descriptor table is not wholly inside one region
  avail_out_of_range,  // the available ring (with used_event under EVENT_IDX) likewise
  used_out_of_range,   // the used ring (with avail_event under EVENT_IDX) likewise
};
std::string_view to_string(QueueSetupFault fault);

enum class ChainFault : uint8_t {
  head_out_of_range,        // the avail ring entry is >= size (no head to complete)
  next_out_of_range,        // a `next` index outside its table
  too_long,                 // more descriptors than the table holds: a loop
  buffer_out_of_range,      // a buffer not wholly inside one guest memory region
  readable_after_writable,  // virtio puts all readable buffers first
  too_many_bytes,           // over max_chain_bytes in one direction
  indirect_not_negotiated,
  indirect_with_next,  // INDIRECT and NEXT on one descriptor
  nested_indirect,     // INDIRECT inside an indirect table
  indirect_bad_size,   // 0, not a multiple of 16, or more entries than allowed
  indirect_out_of_range,
};
std::string_view to_string(ChainFault fault);

enum class PopStatus : uint8_t {
  empty,        // nothing available
  chain,        // `chain` is valid
  bad_chain,    // `fault` says why; complete `head` with 0 bytes if completable()
  broken_ring,  // the available ring is corrupt; the queue stops
};

struct PopResult {
  PopStatus status = PopStatus::empty;
  ChainFault fault{};  // bad_chain only
  // chain and bad_chain: the head from the avail ring. For head_out_of_range it is the raw value
  // and not a descriptor index.
  uint16_t head = 0;
  DescriptorChain chain;  // chain only

  // Whether the caller must return `head` to the used ring (push) once it is done.
  bool completable() const {
    return status == PopStatus::chain ||
           (status == PopStatus::bad_chain && fault != ChainFault::head_out_of_range);
  }
};

class SplitVirtqueue {
 public:
  static constexpr uint32_t min_indirect_limit = 1024;

  // Translates and checks the rings. The queue keeps `memory` alive.
  static Expected<SplitVirtqueue, QueueSetupFault> create(std::shared_ptr<const GuestMemory> memory,
                                                          const VirtqueueConfig& config);

  SplitVirtqueue(SplitVirtqueue&&) noexcept = default;
  SplitVirtqueue& operator=(SplitVirtqueue&&) noexcept = default;
  SplitVirtqueue(const SplitVirtqueue&) = delete;
  SplitVirtqueue& operator=(const SplitVirtqueue&) = delete;

  // Takes the next available chain, if any. Never reads outside guest memory, never loops
  // unboundedly.
  PopResult pop();

  // Returns a popped head (a chain's or a completable bad chain's) to the driver with the number
  // of bytes written into its writable buffers, and publishes it (release order: the used
  // element and every byte written into the buffers are visible before the new used->idx).
  // Throws std::logic_error for a head >= size or when nothing is in flight (caller bugs).
  void push(uint16_t head, uint32_t written);

  // Whether the driver wants an interrupt (the call eventfd) for the entries pushed since the
  // previous call. Call once after a batch of push()es. With EVENT_IDX: vring_need_event(
  // used_event, used idx now, used idx at the previous call), and always true the first time;
  // without it: whether the driver left VRING_AVAIL_F_NO_INTERRUPT clear. False when nothing was
  // pushed since the previous call.
  bool needs_notify();

  // Kick suppression while the device is draining the ring anyway. Without EVENT_IDX this sets
  // VRING_USED_F_NO_NOTIFY; with EVENT_IDX there is nothing to set (avail_event simply stays
  // behind) and it does nothing.
  void disable_notification();
  // Asks for kicks again (clears VRING_USED_F_NO_NOTIFY, or with EVENT_IDX sets avail_event to
  // last_avail_idx()), then re-reads avail->idx after a full fence. Returns true when buffers
  // arrived in between: the caller must pop again, since no kick will come for them.
  //   loop { disable_notification(); while pop() ... ; if (!enable_notification()) break; }
  bool enable_notification();

  // For VHOST_USER_GET_VRING_BASE.
  uint16_t last_avail_idx() const { return last_avail_idx_; }
  uint16_t used_idx() const { return used_idx_; }
  uint32_t size() const { return size_; }
  // Heads popped (completable) and not pushed yet.
  uint32_t in_flight() const { return in_flight_; }
  bool broken() const { return broken_; }
  bool event_idx() const { return event_idx_; }
  bool indirect_desc() const { return indirect_desc_; }
  // The largest indirect table accepted: max(size, 1024).
  uint32_t max_indirect_entries() const;

 private:
  SplitVirtqueue() = default;

  bool read_chain(uint16_t head, DescriptorChain& chain, ChainFault& fault) const;

  std::shared_ptr<const GuestMemory> memory_;
  std::byte* desc_ = nullptr;
  std::byte* avail_ = nullptr;
  std::byte* used_ = nullptr;
  uint64_t max_chain_bytes_ = VirtqueueConfig::default_max_chain_bytes;
  uint32_t size_ = 0;
  uint32_t in_flight_ = 0;
  uint16_t last_avail_idx_ = 0;
  uint16_t used_idx_ = 0;
  uint16_t used_flags_ = 0;      // our copy: the guest may scribble on the ring's
  uint16_t signalled_used_ = 0;  // used_idx_ at the previous needs_notify()
  bool signalled_used_valid_ = false;
  bool pushed_since_notify_ = false;
  bool event_idx_ = false;
  bool indirect_desc_ = false;
  bool broken_ = false;
};

}  // namespace sandfs::vhost_user
