#include "transport/vhost_user/virtqueue.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <stdexcept>

#include "transport/vhost_user/virtio_ring.hpp"

namespace sandfs::vhost_user {

namespace {

// Guest memory is shared with a guest that writes it concurrently, so every access is an atomic
// one on an address whose alignment was checked: the compiler may neither re-read nor tear a
// field we validated (no double fetch), nor move our ring updates around.
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint16_t>::is_always_lock_free);

template <class T>
T load(const std::byte* p, std::memory_order order) {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(const_cast<std::byte*>(p))).load(order);
}

template <class T>
void store(std::byte* p, T value, std::memory_order order) {
  std::atomic_ref<T>(*reinterpret_cast<T*>(p)).store(value, order);
}

constexpr size_t avail_idx_offset = offsetof(vring_avail_header, idx);
constexpr size_t used_idx_offset = offsetof(vring_used_header, idx);

// One descriptor, copied out of guest memory once; only this copy is checked and used.
struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

Descriptor load_descriptor(const std::byte* p) {
  Descriptor d{};
  if (reinterpret_cast<uintptr_t>(p) % alignof(uint64_t) == 0) {
    const uint64_t addr = load<uint64_t>(p, std::memory_order_relaxed);
    const uint64_t rest = load<uint64_t>(p + 8, std::memory_order_relaxed);
    d.addr = addr;
    d.len = static_cast<uint32_t>(rest);
    d.flags = static_cast<uint16_t>(rest >> 32);
    d.next = static_cast<uint16_t>(rest >> 48);
    return d;
  }
  // Indirect tables come with no alignment promise. Volatile byte loads: each byte read once.
  unsigned char raw[sizeof(vring_desc)];
  const auto* src = reinterpret_cast<const volatile unsigned char*>(p);
  for (size_t i = 0; i < sizeof raw; ++i)
    raw[i] = src[i];
  std::memcpy(&d.addr, raw + offsetof(vring_desc, addr), sizeof d.addr);
  std::memcpy(&d.len, raw + offsetof(vring_desc, len), sizeof d.len);
  std::memcpy(&d.flags, raw + offsetof(vring_desc, flags), sizeof d.flags);
  std::memcpy(&d.next, raw + offsetof(vring_desc, next), sizeof d.next);
  return d;
}

}  // namespace

std::string_view to_string(QueueSetupFault fault) {
  switch (fault) {
    case QueueSetupFault::bad_size:
      return "queue size is not a power of 2 between 1 and 32768";
    case QueueSetupFault::misaligned:
      return "ring address misaligned";
    case QueueSetupFault::desc_out_of_range:
      return "descriptor table outside guest memory";
    case QueueSetupFault::avail_out_of_range:
      return "available ring outside guest memory";
    case QueueSetupFault::used_out_of_range:
      return "used ring outside guest memory";
  }
  return "unknown queue setup fault";
}

std::string_view to_string(ChainFault fault) {
  switch (fault) {
    case ChainFault::head_out_of_range:
      return "head index out of range";
    case ChainFault::next_out_of_range:
      return "next index out of range";
    case ChainFault::too_long:
      return "chain longer than its table (loop)";
    case ChainFault::buffer_out_of_range:
      return "buffer outside guest memory";
    case ChainFault::readable_after_writable:
      return "readable buffer after a writable one";
    case ChainFault::too_many_bytes:
      return "chain too large";
    case ChainFault::indirect_not_negotiated:
      return "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC";
    case ChainFault::indirect_with_next:
      return "indirect descriptor with NEXT";
    case ChainFault::nested_indirect:
      return "nested indirect descriptor";
    case ChainFault::indirect_bad_size:
      return "indirect table size invalid";
    case ChainFault::indirect_out_of_range:
      return "indirect table outside guest memory";
  }
  return "unknown chain fault";
}

Expected<SplitVirtqueue, QueueSetupFault> SplitVirtqueue::create(
    std::shared_ptr<const GuestMemory> memory, const VirtqueueConfig& config) {
  if (memory == nullptr) throw std::invalid_argument("SplitVirtqueue: no guest memory");
  const uint32_t size = config.size;
  if (size == 0 || size > max_queue_size || !std::has_single_bit(size))
    return QueueSetupFault::bad_size;
  if (config.desc_addr % vring_desc_align != 0 || config.avail_addr % vring_avail_align != 0 ||
      config.used_addr % vring_used_align != 0)
    return QueueSetupFault::misaligned;

  auto translate = [&](uint64_t addr, size_t len) {
    return config.address_space == RingAddressSpace::user ? memory->translate_user(addr, len)
                                                          : memory->translate(addr, len);
  };
  std::byte* desc = translate(config.desc_addr, vring_desc_bytes(size));
  if (desc == nullptr) return QueueSetupFault::desc_out_of_range;
  std::byte* avail = translate(config.avail_addr, vring_avail_bytes(size, config.event_idx));
  if (avail == nullptr) return QueueSetupFault::avail_out_of_range;
  std::byte* used = translate(config.used_addr, vring_used_bytes(size, config.event_idx));
  if (used == nullptr) return QueueSetupFault::used_out_of_range;
  // The host side must be aligned too for the atomic accesses (a region whose mmap_offset is
  // not congruent with its guest address could break it).
  if (reinterpret_cast<uintptr_t>(desc) % vring_desc_align != 0 ||
      reinterpret_cast<uintptr_t>(avail) % vring_avail_align != 0 ||
      reinterpret_cast<uintptr_t>(used) % vring_used_align != 0)
    return QueueSetupFault::misaligned;

  SplitVirtqueue q;
  q.memory_ = std::move(memory);
  q.desc_ = desc;
  q.avail_ = avail;
  q.used_ = used;
  q.max_chain_bytes_ = config.max_chain_bytes;
  q.size_ = size;
  q.last_avail_idx_ = config.last_avail_idx;
  // The driver's view of the used ring is what counts: on a reconnect it holds what the
  // previous backend published.
  q.used_idx_ = load<uint16_t>(used + used_idx_offset, std::memory_order_acquire);
  q.event_idx_ = config.event_idx;
  q.indirect_desc_ = config.indirect_desc;
  return q;
}

uint32_t SplitVirtqueue::max_indirect_entries() const {
  return std::max(size_, min_indirect_limit);
}

PopResult SplitVirtqueue::pop() {
  PopResult out;
  if (broken_) {
    out.status = PopStatus::broken_ring;
    return out;
  }
  // Acquire: the ring entries and descriptors the driver wrote before publishing this index are
  // visible to the loads below.
  const uint16_t avail_idx = load<uint16_t>(avail_ + avail_idx_offset, std::memory_order_acquire);
  const auto pending = static_cast<uint16_t>(avail_idx - last_avail_idx_);
  if (pending == 0) return out;
  if (pending > size_ || in_flight_ >= size_) {
    // The driver cannot have more than `size` chains outstanding, counting those we hold: each
    // owns at least its head descriptor until we return it. Beyond that its ring is corrupt (or
    // it is trying to make us hold unbounded work), and nothing in it means anything any more.
    broken_ = true;
    out.status = PopStatus::broken_ring;
    return out;
  }
  const size_t slot = last_avail_idx_ & (size_ - 1);
  const uint16_t head = load<uint16_t>(
      avail_ + sizeof(vring_avail_header) + slot * sizeof(uint16_t), std::memory_order_relaxed);
  ++last_avail_idx_;
  out.head = head;
  if (head >= size_) {
    out.status = PopStatus::bad_chain;
    out.fault = ChainFault::head_out_of_range;
    return out;
  }
  ++in_flight_;
  if (read_chain(head, out.chain, out.fault)) {
    out.status = PopStatus::chain;
  } else {
    out.status = PopStatus::bad_chain;
    out.chain = DescriptorChain{};
  }
  return out;
}

bool SplitVirtqueue::read_chain(uint16_t head, DescriptorChain& chain, ChainFault& fault) const {
  chain.head_ = head;
  chain.memory_ = memory_;
  const std::byte* table = desc_;
  uint32_t table_size = size_;
  // A chain without a loop visits each descriptor of its table at most once, so a budget of the
  // table's size ends every loop. The indirect table gets a fresh budget of its own size.
  uint32_t budget = size_;
  bool in_indirect = false;
  bool writable_seen = false;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
  uint32_t index = head;
  for (;;) {
    if (budget == 0) {
      fault = ChainFault::too_long;
      return false;
    }
    --budget;
    const Descriptor d = load_descriptor(table + index * sizeof(vring_desc));

    if ((d.flags & VRING_DESC_F_INDIRECT) != 0) {
      if (!indirect_desc_) {
        fault = ChainFault::indirect_not_negotiated;
        return false;
      }
      if (in_indirect) {
        fault = ChainFault::nested_indirect;
        return false;
      }
      if ((d.flags & VRING_DESC_F_NEXT) != 0) {
        fault = ChainFault::indirect_with_next;
        return false;
      }
      if (d.len == 0 || d.len % sizeof(vring_desc) != 0 ||
          d.len / sizeof(vring_desc) > max_indirect_entries()) {
        fault = ChainFault::indirect_bad_size;
        return false;
      }
      const std::byte* indirect = memory_->translate(d.addr, d.len);
      if (indirect == nullptr) {
        fault = ChainFault::indirect_out_of_range;
        return false;
      }
      table = indirect;
      table_size = d.len / sizeof(vring_desc);
      budget = table_size;
      in_indirect = true;
      index = 0;
      continue;
    }

    const bool writable = (d.flags & VRING_DESC_F_WRITE) != 0;
    if (!writable && writable_seen) {
      fault = ChainFault::readable_after_writable;
      return false;
    }
    writable_seen = writable_seen || writable;
    if (d.len > 0) {
      std::byte* buffer = memory_->translate(d.addr, d.len);
      if (buffer == nullptr) {
        fault = ChainFault::buffer_out_of_range;
        return false;
      }
      // At most (32768 + 32768) descriptors of < 4 GiB each: the sums cannot wrap 64 bits.
      uint64_t& total = writable ? writable_bytes : readable_bytes;
      total += d.len;
      if (total > max_chain_bytes_) {
        fault = ChainFault::too_many_bytes;
        return false;
      }
      chain.iov_.push_back(iovec{buffer, d.len});
      if (!writable) ++chain.readable_count_;
    }

    if ((d.flags & VRING_DESC_F_NEXT) == 0) break;
    index = d.next;
    if (index >= table_size) {
      fault = ChainFault::next_out_of_range;
      return false;
    }
  }
  chain.readable_bytes_ = readable_bytes;
  chain.writable_bytes_ = writable_bytes;
  return true;
}

void SplitVirtqueue::push(uint16_t head, uint32_t written) {
  if (head >= size_) throw std::logic_error("SplitVirtqueue::push: head out of range");
  if (in_flight_ == 0) throw std::logic_error("SplitVirtqueue::push: nothing in flight");
  --in_flight_;
  std::byte* elem =
      used_ + sizeof(vring_used_header) + (used_idx_ & (size_ - 1)) * sizeof(vring_used_elem);
  store<uint32_t>(elem + offsetof(vring_used_elem, id), head, std::memory_order_relaxed);
  store<uint32_t>(elem + offsetof(vring_used_elem, len), written, std::memory_order_relaxed);
  ++used_idx_;
  // Release: the element and everything written into the chain's buffers before this point are
  // visible to a driver that sees the new index.
  store<uint16_t>(used_ + used_idx_offset, used_idx_, std::memory_order_release);
  pushed_since_notify_ = true;
}

bool SplitVirtqueue::needs_notify() {
  if (!pushed_since_notify_) return false;
  pushed_since_notify_ = false;
  // Store-load ordering: our used->idx store must be visible before we read the driver's
  // suppression state. Otherwise a driver that re-enabled interrupts and then found no new used
  // entries would sleep while we read its stale "no interrupt" and skip the signal.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx_) {
    const uint16_t flags = load<uint16_t>(avail_, std::memory_order_relaxed);
    return (flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
  }
  const uint16_t old_idx = signalled_used_;
  const bool valid = signalled_used_valid_;
  signalled_used_ = used_idx_;
  signalled_used_valid_ = true;
  const uint16_t used_event = load<uint16_t>(
      avail_ + sizeof(vring_avail_header) + size_ * sizeof(uint16_t), std::memory_order_relaxed);
  return !valid || vring_need_event(used_event, used_idx_, old_idx);
}

void SplitVirtqueue::disable_notification() {
  if (event_idx_) return;
  used_flags_ |= VRING_USED_F_NO_NOTIFY;
  store<uint16_t>(used_, used_flags_, std::memory_order_relaxed);
}

bool SplitVirtqueue::enable_notification() {
  if (event_idx_) {
    store<uint16_t>(used_ + sizeof(vring_used_header) + size_ * sizeof(vring_used_elem),
                    last_avail_idx_, std::memory_order_relaxed);
  } else {
    used_flags_ &= static_cast<uint16_t>(~VRING_USED_F_NO_NOTIFY);
    store<uint16_t>(used_, used_flags_, std::memory_order_relaxed);
  }
  // Store-load again: the driver must see the request for kicks before we look for buffers it
  // added without kicking, or one added in between would wait for a kick that never comes.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return load<uint16_t>(avail_ + avail_idx_offset, std::memory_order_acquire) != last_avail_idx_;
}

}  // namespace sandfs::vhost_user
