// A fake guest for the vhost-user unit tests: guest RAM in a memfd, shared like a VMM shares it,
// and a minimal split-ring driver that writes descriptors and rings through its own mapping.
//
// Two regions with a hole between them:
//   A: guest [0x10000, 0x110000)   file offset 0
//   B: guest [0x200000, 0x300000)  file offset 1 MiB + 4 KiB + 2 KiB (not page-aligned, so
//      GuestMemory must map from the page below and adjust)
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "transport/vhost_user/guest_memory.hpp"
#include "transport/vhost_user/virtio_ring.hpp"
#include "transport/vhost_user/virtqueue.hpp"

namespace sandfs::vhost_user::testing {

class FakeGuest {
 public:
  static constexpr uint64_t a_gpa = 0x10000;
  static constexpr uint64_t a_size = 1 << 20;
  static constexpr uint64_t a_offset = 0;
  static constexpr uint64_t a_user = 0x7f1200000000;
  static constexpr uint64_t b_gpa = 0x200000;
  static constexpr uint64_t b_size = 1 << 20;
  static constexpr uint64_t b_offset = (1 << 20) + 4096 + 2048;
  static constexpr uint64_t b_user = 0x7f1200400000;
  static constexpr size_t file_size = 3 << 20;

  FakeGuest() {
    fd_ = ::memfd_create("sandfs-fake-guest", MFD_CLOEXEC);
    if (fd_ < 0 || ::ftruncate(fd_, file_size) != 0) throw std::runtime_error("memfd");
    void* view = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (view == MAP_FAILED) throw std::runtime_error("mmap");
    view_ = static_cast<std::byte*>(view);
    const std::vector<MemoryRegionInfo> regions = table();
    const int fds[2] = {fd_, fd_};
    auto mapped = GuestMemory::map(regions, fds);
    if (!mapped) throw std::runtime_error(mapped.error().message());
    memory = std::move(mapped).value();
  }
  ~FakeGuest() {
    ::munmap(view_, file_size);
    ::close(fd_);
  }
  FakeGuest(const FakeGuest&) = delete;
  FakeGuest& operator=(const FakeGuest&) = delete;

  static std::vector<MemoryRegionInfo> table() {
    return {MemoryRegionInfo{a_gpa, a_size, a_user, a_offset},
            MemoryRegionInfo{b_gpa, b_size, b_user, b_offset}};
  }
  int fd() const { return fd_; }

  // The guest's own view of guest physical `gpa` (through the test's mapping, not GuestMemory's).
  std::byte* at(uint64_t gpa) const {
    if (gpa >= a_gpa && gpa < a_gpa + a_size) return view_ + a_offset + (gpa - a_gpa);
    if (gpa >= b_gpa && gpa < b_gpa + b_size) return view_ + b_offset + (gpa - b_gpa);
    throw std::out_of_range("FakeGuest::at: not guest RAM");
  }
  static uint64_t user_of(uint64_t gpa) {
    return gpa >= b_gpa ? b_user + (gpa - b_gpa) : a_user + (gpa - a_gpa);
  }

  template <class T>
  void put(uint64_t gpa, T value) {
    std::memcpy(at(gpa), &value, sizeof value);
  }
  template <class T>
  T get(uint64_t gpa) const {
    T value;
    std::memcpy(&value, at(gpa), sizeof value);
    return value;
  }

  void put_desc(uint64_t table_gpa, uint32_t index, uint64_t addr, uint32_t len, uint16_t flags,
                uint16_t next = 0) {
    put(table_gpa + 16 * uint64_t{index}, vring_desc{addr, len, flags, next});
  }

  std::shared_ptr<const GuestMemory> memory;

 private:
  int fd_ = -1;
  std::byte* view_ = nullptr;
};

// The driver side of one split ring, laid out at the start of region A:
// descriptor table, then the available ring, then the used ring (4-aligned).
class FakeDriver {
 public:
  FakeDriver(FakeGuest& guest, uint32_t size, uint16_t start_idx = 0)
      : guest_(guest), size_(size), avail_idx_(start_idx) {
    desc_gpa = FakeGuest::a_gpa;
    avail_gpa = desc_gpa + 16 * uint64_t{size};
    used_gpa = (avail_gpa + vring_avail_bytes(size, true) + 3) & ~uint64_t{3};
    std::memset(guest.at(desc_gpa), 0, used_gpa + vring_used_bytes(size, true) - desc_gpa);
    guest_.put<uint16_t>(avail_gpa + 2, start_idx);
    guest_.put<uint16_t>(used_gpa + 2, start_idx);
  }

  VirtqueueConfig config(bool event_idx = false, bool indirect = false) const {
    VirtqueueConfig c;
    c.size = size_;
    c.desc_addr = FakeGuest::user_of(desc_gpa);
    c.avail_addr = FakeGuest::user_of(avail_gpa);
    c.used_addr = FakeGuest::user_of(used_gpa);
    c.address_space = RingAddressSpace::user;
    c.last_avail_idx = avail_idx_;
    c.event_idx = event_idx;
    c.indirect_desc = indirect;
    return c;
  }

  SplitVirtqueue queue(bool event_idx = false, bool indirect = false) const {
    auto q = SplitVirtqueue::create(guest_.memory, config(event_idx, indirect));
    if (!q) throw std::runtime_error(std::string(to_string(q.error())));
    return std::move(q).value();
  }

  void desc(uint32_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0) {
    guest_.put_desc(desc_gpa, index, addr, len, flags, next);
  }
  // Offers the chain starting at `head`.
  void publish(uint16_t head) {
    guest_.put<uint16_t>(avail_gpa + 4 + 2 * (avail_idx_ % size_), head);
    ++avail_idx_;
    guest_.put<uint16_t>(avail_gpa + 2, avail_idx_);
  }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    guest_.put<uint16_t>(avail_gpa + 2, idx);
  }
  uint16_t avail_idx() const { return avail_idx_; }

  void set_avail_flags(uint16_t flags) { guest_.put<uint16_t>(avail_gpa, flags); }
  void set_used_event(uint16_t idx) { guest_.put<uint16_t>(avail_gpa + 4 + 2 * size_, idx); }
  uint16_t used_flags() const { return guest_.get<uint16_t>(used_gpa); }
  uint16_t used_idx() const { return guest_.get<uint16_t>(used_gpa + 2); }
  uint16_t avail_event() const { return guest_.get<uint16_t>(used_gpa + 4 + 8 * size_); }
  vring_used_elem used_elem(uint32_t slot) const {
    return guest_.get<vring_used_elem>(used_gpa + 4 + 8 * uint64_t{slot % size_});
  }

  uint64_t desc_gpa = 0;
  uint64_t avail_gpa = 0;
  uint64_t used_gpa = 0;

 private:
  FakeGuest& guest_;
  uint32_t size_;
  uint16_t avail_idx_;
};

// Where tests put buffers: well past the rings in region A, and in region B.
inline constexpr uint64_t buf_a = FakeGuest::a_gpa + 0x40000;
inline constexpr uint64_t buf_b = FakeGuest::b_gpa + 0x1000;

}  // namespace sandfs::vhost_user::testing
