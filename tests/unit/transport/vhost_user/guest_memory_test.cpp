#include "transport/vhost_user/guest_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "fake_guest.hpp"

using sandfs::vhost_user::GuestMemory;
using sandfs::vhost_user::MemoryRegionInfo;
using sandfs::vhost_user::MemoryTableFault;
using sandfs::vhost_user::testing::FakeGuest;

namespace {

constexpr uint64_t u64_max = std::numeric_limits<uint64_t>::max();

MemoryTableFault map_fault(const std::vector<MemoryRegionInfo>& regions, int fd) {
  const std::vector<int> fds(regions.size(), fd);
  auto mapped = GuestMemory::map(regions, fds);
  REQUIRE_FALSE(mapped.ok());
  return mapped.error().fault;
}

}  // namespace

TEST_CASE("guest memory maps each region at its file offset", "[vhost_user][memory]") {
  FakeGuest guest;
  // Bytes the guest wrote through its own mapping show up through GuestMemory's.
  std::memcpy(guest.at(FakeGuest::a_gpa + 100), "region-a", 8);
  std::memcpy(guest.at(FakeGuest::b_gpa), "region-b", 8);
  std::memcpy(guest.at(FakeGuest::b_gpa + FakeGuest::b_size - 8), "b-tail!!", 8);

  const auto& mem = *guest.memory;
  REQUIRE(mem.regions().size() == 2);
  std::byte* a = mem.translate(FakeGuest::a_gpa + 100, 8);
  REQUIRE(a != nullptr);
  CHECK(std::memcmp(a, "region-a", 8) == 0);
  // Region B's mmap_offset is not page-aligned.
  std::byte* b = mem.translate(FakeGuest::b_gpa, 8);
  REQUIRE(b != nullptr);
  CHECK(std::memcmp(b, "region-b", 8) == 0);
  std::byte* tail = mem.translate(FakeGuest::b_gpa + FakeGuest::b_size - 8, 8);
  REQUIRE(tail != nullptr);
  CHECK(std::memcmp(tail, "b-tail!!", 8) == 0);

  // And the other way round.
  std::memcpy(b, "written!", 8);
  CHECK(std::memcmp(guest.at(FakeGuest::b_gpa), "written!", 8) == 0);
}

TEST_CASE("guest memory translates only ranges wholly inside one region", "[vhost_user][memory]") {
  FakeGuest guest;
  const auto& mem = *guest.memory;
  const uint64_t a_end = FakeGuest::a_gpa + FakeGuest::a_size;
  const uint64_t b_end = FakeGuest::b_gpa + FakeGuest::b_size;

  CHECK(mem.translate(FakeGuest::a_gpa, FakeGuest::a_size) != nullptr);  // all of A
  CHECK(mem.translate(FakeGuest::a_gpa, FakeGuest::a_size + 1) == nullptr);
  CHECK(mem.translate(a_end - 1, 1) != nullptr);
  CHECK(mem.translate(a_end - 1, 2) == nullptr);  // into the hole
  CHECK(mem.translate(a_end, 1) == nullptr);      // the hole
  CHECK(mem.translate(FakeGuest::b_gpa - 1, 2) == nullptr);
  CHECK(mem.translate(FakeGuest::a_gpa, b_end - FakeGuest::a_gpa) == nullptr);  // A, hole, B
  CHECK(mem.translate(FakeGuest::a_gpa - 1, 1) == nullptr);                     // below everything
  CHECK(mem.translate(0, 1) == nullptr);
  CHECK(mem.translate(b_end, 1) == nullptr);  // above everything
  CHECK(mem.translate(b_end - 16, 16) != nullptr);

  // len 0: only the address itself must be guest RAM.
  CHECK(mem.translate(FakeGuest::a_gpa, 0) != nullptr);
  CHECK(mem.translate(a_end - 1, 0) != nullptr);
  CHECK(mem.translate(a_end, 0) == nullptr);

  // Ranges that wrap past 2^64.
  CHECK(mem.translate(FakeGuest::a_gpa, u64_max) == nullptr);
  CHECK(mem.translate(FakeGuest::a_gpa + 16, u64_max - 8) == nullptr);
  CHECK(mem.translate(u64_max, 2) == nullptr);
  CHECK(mem.translate(u64_max, 0) == nullptr);
  CHECK(mem.translate(u64_max - 15, 16) == nullptr);
}

TEST_CASE("guest memory translates frontend user addresses", "[vhost_user][memory]") {
  FakeGuest guest;
  const auto& mem = *guest.memory;
  CHECK(mem.translate_user(FakeGuest::a_user + 64, 64) == mem.translate(FakeGuest::a_gpa + 64, 64));
  CHECK(mem.translate_user(FakeGuest::b_user, FakeGuest::b_size) ==
        mem.translate(FakeGuest::b_gpa, FakeGuest::b_size));
  CHECK(mem.translate_user(FakeGuest::a_user + FakeGuest::a_size - 4, 8) == nullptr);
  CHECK(mem.translate_user(FakeGuest::a_user - 1, 1) == nullptr);
  CHECK(mem.translate_user(FakeGuest::b_user + FakeGuest::b_size, 1) == nullptr);
  CHECK(mem.translate_user(u64_max, 16) == nullptr);
  // A guest physical address is not a user address.
  CHECK(mem.translate_user(FakeGuest::a_gpa, 1) == nullptr);
}

TEST_CASE("guest memory knows which host ranges are guest RAM", "[vhost_user][memory]") {
  FakeGuest guest;
  const auto& mem = *guest.memory;
  std::byte* b = mem.translate(FakeGuest::b_gpa, 1);
  CHECK(mem.contains_host(b, FakeGuest::b_size));
  CHECK_FALSE(mem.contains_host(b, FakeGuest::b_size + 1));
  CHECK_FALSE(mem.contains_host(b - 1, 1));
  int local = 0;
  CHECK_FALSE(mem.contains_host(&local, sizeof local));
}

TEST_CASE("a memory table with an invalid region maps nothing", "[vhost_user][memory]") {
  FakeGuest guest;  // for its memfd (3 MiB)
  const int fd = guest.fd();
  using R = MemoryRegionInfo;

  CHECK(map_fault({R{0x1000, 0, 0x1000, 0}}, fd) == MemoryTableFault::empty_region);
  CHECK(map_fault({R{u64_max - 0xfff, 0x2000, 0x1000, 0}}, fd) == MemoryTableFault::region_wraps);
  CHECK(map_fault({R{0x1000, 0x2000, u64_max - 0xfff, 0}}, fd) == MemoryTableFault::region_wraps);
  CHECK(map_fault({R{0x1000, 0x2000, 0x1000, u64_max - 0xfff}}, fd) ==
        MemoryTableFault::region_wraps);
  // Overlapping guest ranges, in either order, and one inside another.
  CHECK(map_fault({R{0x10000, 0x10000, 0x1000, 0}, R{0x1f000, 0x10000, 0x100000, 0}}, fd) ==
        MemoryTableFault::regions_overlap);
  CHECK(map_fault({R{0x1f000, 0x10000, 0x100000, 0}, R{0x10000, 0x10000, 0x1000, 0}}, fd) ==
        MemoryTableFault::regions_overlap);
  CHECK(map_fault({R{0x10000, 0x100000, 0x1000, 0}, R{0x20000, 0x1000, 0x200000, 0}}, fd) ==
        MemoryTableFault::regions_overlap);
  // Past the end of the 3 MiB file.
  CHECK(map_fault({R{0x10000, (3 << 20) + 1, 0x1000, 0}}, fd) == MemoryTableFault::beyond_file_end);
  CHECK(map_fault({R{0x10000, 0x1000, 0x1000, 3 << 20}}, fd) == MemoryTableFault::beyond_file_end);
  CHECK(map_fault({R{0x10000, 0x2000, 0x1000, (3 << 20) - 0x1000}}, fd) ==
        MemoryTableFault::beyond_file_end);
  CHECK(map_fault({R{0x10000, 0x1000, 0x1000, 0}}, -1) == MemoryTableFault::bad_fd);

  const std::vector<R> two = {R{0x10000, 0x1000, 0x1000, 0}, R{0x20000, 0x1000, 0x3000, 0}};
  const int one_fd[1] = {fd};
  auto mismatch = GuestMemory::map(two, one_fd);
  REQUIRE_FALSE(mismatch.ok());
  CHECK(mismatch.error().fault == MemoryTableFault::fd_count_mismatch);

  std::vector<R> many;
  for (uint64_t i = 0; i <= GuestMemory::max_regions; ++i)
    many.push_back(R{i * 0x1000, 0x1000, i * 0x1000, 0});
  CHECK(map_fault(many, fd) == MemoryTableFault::too_many_regions);

  // The fault names the region as the frontend numbered it.
  const std::vector<int> fds = {fd, fd, fd};
  auto bad = GuestMemory::map(
      std::vector<R>{R{0x10000, 0x1000, 0, 0}, R{0x20000, 0x1000, 0, 0}, R{0x30000, 0, 0, 0}}, fds);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().region == 2);
  CHECK(bad.error().message().find("region 2") != std::string::npos);
}

TEST_CASE("guest memory accepts adjacent regions and up to max_regions", "[vhost_user][memory]") {
  FakeGuest guest;
  std::vector<MemoryRegionInfo> table;
  for (uint64_t i = 0; i < 16; ++i)  // adjacent, in reverse order, sharing file pages
    table.push_back(MemoryRegionInfo{(16 - i) * 0x1000, 0x1000, 0x500000 + i * 0x1000, i * 0x800});
  const std::vector<int> fds(table.size(), guest.fd());
  auto mapped = GuestMemory::map(table, fds);
  REQUIRE(mapped.ok());
  const auto& mem = **mapped;
  CHECK(mem.regions().size() == 16);
  CHECK(mem.regions().front().guest_phys_addr == 0x1000);
  CHECK(mem.translate(0x1000, 0x1000) != nullptr);
  // Adjacent regions are not merged: one range may not span two of them.
  CHECK(mem.translate(0x1800, 0x1000) == nullptr);
  CHECK(mem.translate(0x10000, 0x1000) != nullptr);
  CHECK(mem.translate(0x11000, 1) == nullptr);
  // Region i starts at file offset i * 2 KiB: the unaligned offsets are honoured.
  std::memcpy(guest.at(FakeGuest::a_gpa + 3 * 0x800), "offset3", 7);
  CHECK(std::memcmp(mem.translate((16 - 3) * 0x1000, 7), "offset3", 7) == 0);
}

TEST_CASE("guest memory adopts memory mapped by the caller", "[vhost_user][memory]") {
  std::vector<std::byte> ram(8192);
  const std::vector<GuestMemory::Region> regions = {
      GuestMemory::Region{0x4000, 4096, 0x9000, ram.data()},
      GuestMemory::Region{0x1000, 4096, 0x8000, ram.data() + 4096}};
  auto adopted = GuestMemory::adopt(regions);
  REQUIRE(adopted.ok());
  CHECK((*adopted)->translate(0x4000, 4096) == ram.data());
  CHECK((*adopted)->translate(0x1000, 16) == ram.data() + 4096);
  CHECK((*adopted)->translate(0x2000, 1) == nullptr);
  CHECK((*adopted)->translate_user(0x8000, 1) == ram.data() + 4096);

  const std::vector<GuestMemory::Region> overlapping = {
      GuestMemory::Region{0x1000, 4096, 0, ram.data()},
      GuestMemory::Region{0x1fff, 4096, 0, ram.data() + 4096}};
  auto bad = GuestMemory::adopt(overlapping);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().fault == MemoryTableFault::regions_overlap);
}
