#include "transport/vhost_user/guest_memory.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <numeric>

namespace sandfs::vhost_user {

namespace {

static_assert(sizeof(size_t) == sizeof(uint64_t), "guest regions are sized in 64 bits");

constexpr uint64_t u64_max = std::numeric_limits<uint64_t>::max();

// Whether [start, start + len) passes 2^64 (len > 0).
bool wraps(uint64_t start, uint64_t len) {
  return len - 1 > u64_max - start;
}

// Offset of [addr, addr + len) within [base, base + size), or u64_max when it is not wholly
// inside. Never computes addr + len, so nothing can wrap.
uint64_t offset_within(uint64_t base, uint64_t size, uint64_t addr, uint64_t len) {
  if (addr < base) return u64_max;
  const uint64_t offset = addr - base;
  if (offset >= size) return u64_max;
  if (len > size - offset) return u64_max;
  return offset;
}

}  // namespace

std::string MemoryTableError::message() const {
  std::string what;
  switch (fault) {
    case MemoryTableFault::too_many_regions:
      what = "too many regions";
      break;
    case MemoryTableFault::fd_count_mismatch:
      what = "not one fd per region";
      break;
    case MemoryTableFault::empty_region:
      what = "empty region";
      break;
    case MemoryTableFault::region_wraps:
      what = "region wraps the address space";
      break;
    case MemoryTableFault::regions_overlap:
      what = "region overlaps another one";
      break;
    case MemoryTableFault::bad_fd:
      what = "cannot stat the region's fd";
      break;
    case MemoryTableFault::beyond_file_end:
      what = "region extends past the end of its file";
      break;
    case MemoryTableFault::too_large:
      what = "region too large for this host";
      break;
    case MemoryTableFault::mmap_failed:
      what = "mmap failed";
      break;
  }
  std::string out = "memory table region " + std::to_string(region) + ": " + what;
  if (sys_errno != 0) {
    out += ": ";
    out += std::strerror(sys_errno);
  }
  return out;
}

Expected<std::vector<GuestMemory::Region>, MemoryTableError> GuestMemory::validated(
    std::span<const Region> regions) {
  if (regions.size() > max_regions) return MemoryTableError{MemoryTableFault::too_many_regions};
  for (size_t i = 0; i < regions.size(); ++i) {
    const Region& r = regions[i];
    if (r.size == 0) return MemoryTableError{MemoryTableFault::empty_region, i};
    if (wraps(r.guest_phys_addr, r.size) || wraps(r.user_addr, r.size))
      return MemoryTableError{MemoryTableFault::region_wraps, i};
    if (wraps(reinterpret_cast<uintptr_t>(r.host), r.size))
      return MemoryTableError{MemoryTableFault::too_large, i};
  }
  std::vector<size_t> order(regions.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return regions[a].guest_phys_addr < regions[b].guest_phys_addr;
  });
  std::vector<Region> sorted;
  sorted.reserve(regions.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const Region& r = regions[order[k]];
    if (k > 0) {
      const Region& prev = sorted.back();
      // Sorted, so only the predecessor can reach into r.
      if (r.guest_phys_addr - prev.guest_phys_addr < prev.size)
        return MemoryTableError{MemoryTableFault::regions_overlap, order[k]};
    }
    sorted.push_back(r);
  }
  return sorted;
}

Expected<std::shared_ptr<const GuestMemory>, MemoryTableError> GuestMemory::map(
    std::span<const MemoryRegionInfo> regions, std::span<const int> fds) {
  if (regions.size() > max_regions) return MemoryTableError{MemoryTableFault::too_many_regions};
  if (fds.size() != regions.size()) return MemoryTableError{MemoryTableFault::fd_count_mismatch};

  // Everything is checked before anything is mapped; `host` is filled in once the mapping exists.
  std::vector<Region> table(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegionInfo& info = regions[i];
    if (info.memory_size == 0) return MemoryTableError{MemoryTableFault::empty_region, i};
    if (wraps(info.mmap_offset, info.memory_size))
      return MemoryTableError{MemoryTableFault::region_wraps, i};
    if (info.mmap_offset > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) ||
        info.memory_size > std::numeric_limits<size_t>::max() / 2)
      return MemoryTableError{MemoryTableFault::too_large, i};
    struct stat st {};
    if (::fstat(fds[i], &st) != 0) return MemoryTableError{MemoryTableFault::bad_fd, i, errno};
    if (S_ISREG(st.st_mode)) {
      const uint64_t file_size = st.st_size > 0 ? static_cast<uint64_t>(st.st_size) : 0;
      if (info.mmap_offset > file_size || info.memory_size > file_size - info.mmap_offset)
        return MemoryTableError{MemoryTableFault::beyond_file_end, i};
    }
    table[i] = Region{info.guest_phys_addr, info.memory_size, info.userspace_addr, nullptr};
  }
  auto checked = validated(table);
  if (!checked) return checked.error();

  // mmap wants a page-aligned file offset: map from the page the region starts in and point
  // `host` past the slack. Hugetlbfs frontends align mmap_offset to their page size already.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  std::shared_ptr<GuestMemory> memory(new GuestMemory());
  memory->mappings_.reserve(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegionInfo& info = regions[i];
    const uint64_t aligned_offset = info.mmap_offset & ~(page - 1);
    const uint64_t slack = info.mmap_offset - aligned_offset;
    const size_t length = static_cast<size_t>(info.memory_size + slack);
    void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i],
                        static_cast<off_t>(aligned_offset));
    if (base == MAP_FAILED) return MemoryTableError{MemoryTableFault::mmap_failed, i, errno};
    memory->mappings_.push_back(Mapping{base, length});
    // Guest RAM has no place in our core dumps (size, and the guest's secrets). Best effort.
    (void)::madvise(base, length, MADV_DONTDUMP);
    table[i].host = static_cast<std::byte*>(base) + slack;
  }
  // Same order as validated() chose (ties are impossible: overlaps were rejected).
  std::sort(table.begin(), table.end(),
            [](const Region& a, const Region& b) { return a.guest_phys_addr < b.guest_phys_addr; });
  memory->regions_ = std::move(table);
  return std::shared_ptr<const GuestMemory>(std::move(memory));
}

Expected<std::shared_ptr<const GuestMemory>, MemoryTableError> GuestMemory::adopt(
    std::span<const Region> regions) {
  auto checked = validated(regions);
  if (!checked) return checked.error();
  std::shared_ptr<GuestMemory> memory(new GuestMemory());
  memory->regions_ = std::move(checked).value();
  return std::shared_ptr<const GuestMemory>(std::move(memory));
}

GuestMemory::~GuestMemory() {
  for (const Mapping& m : mappings_)
    ::munmap(m.base, m.length);
}

const GuestMemory::Region* GuestMemory::find(uint64_t addr) const {
  // The last region starting at or below addr is the only one that can hold it.
  auto it = std::upper_bound(regions_.begin(), regions_.end(), addr,
                             [](uint64_t a, const Region& r) { return a < r.guest_phys_addr; });
  if (it == regions_.begin()) return nullptr;
  --it;
  return addr - it->guest_phys_addr < it->size ? &*it : nullptr;
}

std::byte* GuestMemory::translate(uint64_t addr, uint64_t len) const {
  const Region* r = find(addr);
  if (r == nullptr) return nullptr;
  const uint64_t offset = offset_within(r->guest_phys_addr, r->size, addr, len);
  return offset == u64_max ? nullptr : r->host + offset;
}

std::byte* GuestMemory::translate_user(uint64_t user_addr, uint64_t len) const {
  // Rare (once per SET_VRING_ADDR) and user ranges may legitimately overlap when the VMM maps
  // one RAM block at two guest addresses: any region holding the whole range will do.
  for (const Region& r : regions_) {
    const uint64_t offset = offset_within(r.user_addr, r.size, user_addr, len);
    if (offset != u64_max) return r.host + offset;
  }
  return nullptr;
}

bool GuestMemory::contains_host(const void* p, size_t len) const {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  for (const Region& r : regions_) {
    if (offset_within(reinterpret_cast<uintptr_t>(r.host), r.size, addr, len) != u64_max)
      return true;
  }
  return false;
}

}  // namespace sandfs::vhost_user
