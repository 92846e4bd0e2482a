// GuestMemory: a guest's RAM as the vhost-user frontend shares it, and the only translator from
// guest addresses to host pointers.
//
// VHOST_USER_SET_MEM_TABLE carries a table of regions, each {guest_phys_addr, memory_size,
// userspace_addr, mmap_offset} plus an fd. map() validates the whole table first (sizes, wraps,
// overlaps, each region inside its file), then mmaps every region MAP_SHARED read/write. The
// object owns the mappings; the fds may be closed once map() returns. A table is immutable: a new
// SET_MEM_TABLE builds a new GuestMemory, and whoever still holds the old one through a
// shared_ptr (a queue, a request in flight) keeps it mapped until it lets go.
//
// Two address spaces are translated:
//   - guest physical addresses: descriptor buffers and indirect tables;
//   - frontend user addresses (the VMM's own virtual addresses): VHOST_USER_SET_VRING_ADDR gives
//     the rings that way.
// A range translates only when all of it lies inside one region; a range touching a hole, two
// regions, or wrapping past 2^64 does not. Adjacent regions are not merged: a descriptor that
// spans two of them is rejected (no Linux driver makes one; splitting it would need a second
// iovec for what the guest calls one buffer).
//
// The pointers handed out point into memory that the guest writes concurrently. Only the split
// ring code and the chain reader/writer dereference them (see virtqueue.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/expected.hpp"

namespace sandfs::vhost_user {

// One region as VHOST_USER_SET_MEM_TABLE describes it (VhostUserMemoryRegion).
struct MemoryRegionInfo {
  uint64_t guest_phys_addr = 0;
  uint64_t memory_size = 0;
  uint64_t userspace_addr = 0;
  uint64_t mmap_offset = 0;
};

enum class MemoryTableFault : uint8_t {
  too_many_regions,
  fd_count_mismatch,  // not one fd per region
  empty_region,       // memory_size == 0
  region_wraps,       // an address range or mmap_offset + size passes 2^64
  regions_overlap,    // two regions share guest physical addresses
  bad_fd,             // fstat failed
  beyond_file_end,    // mmap_offset + memory_size is past the end of the region's file
  too_large,          // does not fit the host's address space
  mmap_failed,
};

struct MemoryTableError {
  MemoryTableFault fault;
  size_t region = 0;  // index in the table as given
  int sys_errno = 0;  // for bad_fd and mmap_failed
  std::string message() const;
};

class GuestMemory {
 public:
  // QEMU offers up to 509 slots with VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS; the classic
  // message carries 8.
  static constexpr size_t max_regions = 512;

  struct Region {
    uint64_t guest_phys_addr = 0;
    uint64_t size = 0;
    uint64_t user_addr = 0;
    std::byte* host = nullptr;  // first byte of the region in this process
  };

  // Validates and maps a memory table; `fds[i]` belongs to `regions[i]` and is not taken over.
  // Maps nothing when any region is invalid. A region's file size is checked when the fd is a
  // regular file (memfd, hugetlbfs, tmpfs); other kinds (devices) are trusted to the kernel.
  static Expected<std::shared_ptr<const GuestMemory>, MemoryTableError> map(
      std::span<const MemoryRegionInfo> regions, std::span<const int> fds);

  // Memory the caller has mapped (a guest simulator, tests), validated like map() minus the file
  // checks, and not unmapped here: it must outlive the returned object.
  static Expected<std::shared_ptr<const GuestMemory>, MemoryTableError> adopt(
      std::span<const Region> regions);

  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Host pointer for guest physical [addr, addr + len), or nullptr unless the whole range lies in
  // one region. len 0 asks only that `addr` itself lies in a region.
  std::byte* translate(uint64_t addr, uint64_t len) const;
  // The same for the frontend's user (VMM virtual) addresses.
  std::byte* translate_user(uint64_t user_addr, uint64_t len) const;

  // Whether host [p, p + len) lies within one region (for checks and tests).
  bool contains_host(const void* p, size_t len) const;

  // Sorted by guest physical address.
  std::span<const Region> regions() const { return regions_; }

 private:
  struct Mapping {
    void* base;
    size_t length;
  };

  GuestMemory() = default;
  static Expected<std::vector<Region>, MemoryTableError> validated(std::span<const Region> regions);
  const Region* find(uint64_t addr) const;

  std::vector<Region> regions_;
  std::vector<Mapping> mappings_;  // empty for adopted memory
};

}  // namespace sandfs::vhost_user
