// Randomized hostile drivers: whatever the descriptor tables hold, pop() returns, never crashes,
// never stalls, and never hands out an iovec outside guest RAM.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "fake_guest.hpp"
#include "transport/vhost_user/virtqueue.hpp"

using namespace sandfs::vhost_user;
using sandfs::vhost_user::testing::buf_a;
using sandfs::vhost_user::testing::buf_b;
using sandfs::vhost_user::testing::FakeDriver;
using sandfs::vhost_user::testing::FakeGuest;

namespace {

constexpr uint32_t queue_size = 16;
// Indirect tables the fuzzer points at: one in each region, 64 entries each.
constexpr uint64_t table_a = buf_a + 0x20000;
constexpr uint64_t table_b = buf_b + 0x20000;
constexpr uint32_t table_entries = 64;

class Hostile {
 public:
  explicit Hostile(uint64_t seed) : rng_(seed) {}

  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool chance(unsigned percent) { return below(100) < percent; }

  uint64_t addr() {
    constexpr uint64_t a_end = FakeGuest::a_gpa + FakeGuest::a_size;
    constexpr uint64_t b_end = FakeGuest::b_gpa + FakeGuest::b_size;
    const int64_t jitter = static_cast<int64_t>(below(129)) - 64;
    switch (below(10)) {
      case 0:
        return rng_();
      case 1:
        return FakeGuest::a_gpa + jitter;
      case 2:
        return a_end + jitter;
      case 3:
        return FakeGuest::b_gpa + jitter;
      case 4:
        return b_end + jitter;
      case 5:
        return std::numeric_limits<uint64_t>::max() - below(64);
      case 6:
        return chance(50) ? table_a + 16 * below(table_entries) : table_b + 4 * below(256);
      case 7:
        return FakeGuest::a_gpa + below(0x1000);  // the rings themselves
      default:
        return (chance(50) ? buf_a : buf_b) + below(0x10000);
    }
  }

  uint32_t len() {
    switch (below(8)) {
      case 0:
        return 0;
      case 1:
        return static_cast<uint32_t>(rng_());
      case 2:
        return static_cast<uint32_t>(16 * below(table_entries + 2));
      case 3:
        return static_cast<uint32_t>(FakeGuest::a_size - below(64));
      default:
        return static_cast<uint32_t>(1 + below(4096));
    }
  }

  uint16_t flags() {
    if (chance(5)) return static_cast<uint16_t>(rng_());
    uint16_t f = 0;
    if (chance(60)) f |= VRING_DESC_F_NEXT;
    if (chance(40)) f |= VRING_DESC_F_WRITE;
    if (chance(15)) f |= VRING_DESC_F_INDIRECT;
    return f;
  }

  uint16_t next(uint32_t bound) {
    return static_cast<uint16_t>(chance(90) ? below(bound) : rng_());
  }

  vring_desc desc(uint32_t bound) {
    vring_desc d{addr(), len(), flags(), next(bound)};
    // Most indirect descriptors point at a plausible table, so the walk gets into them.
    if ((d.flags & VRING_DESC_F_INDIRECT) != 0 && chance(70)) {
      d.addr = chance(50) ? table_a : table_b + 4 * below(8);
      d.len = static_cast<uint32_t>(16 * (1 + below(table_entries)));
    }
    return d;
  }

 private:
  std::mt19937_64 rng_;
};

bool in_guest_ram(const GuestMemory& memory, const iovec& v) {
  // Independently of contains_host(): against the regions' host ranges one by one.
  const auto p = reinterpret_cast<uintptr_t>(v.iov_base);
  for (const GuestMemory::Region& r : memory.regions()) {
    const auto start = reinterpret_cast<uintptr_t>(r.host);
    if (p >= start && p - start < r.size && v.iov_len <= r.size - (p - start)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("virtqueue survives random descriptor tables", "[vhost_user][virtqueue][fuzz]") {
  FakeGuest guest;
  FakeDriver driver(guest, queue_size);
  Hostile hostile(0x5a4df5eedull);
  const bool event_idx = GENERATE(false, true);
  VirtqueueConfig config = driver.config(event_idx, true);
  config.max_chain_bytes = 1 << 20;
  auto made = SplitVirtqueue::create(guest.memory, config);
  REQUIRE(made.ok());
  SplitVirtqueue q = std::move(made).value();

  std::map<std::string, int> outcomes;
  int iovecs_checked = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    for (uint32_t i = 0; i < queue_size; ++i) {
      if (hostile.chance(50)) guest.put(driver.desc_gpa + 16 * i, hostile.desc(queue_size));
    }
    for (int i = 0; i < 4; ++i) {
      guest.put(table_a + 16 * hostile.below(table_entries), hostile.desc(table_entries));
      guest.put(table_b + 4 * hostile.below(256), hostile.desc(table_entries));
    }
    const auto batch = static_cast<int>(1 + hostile.below(4));
    for (int i = 0; i < batch; ++i)
      driver.publish(static_cast<uint16_t>(hostile.chance(95) ? hostile.below(queue_size)
                                                              : hostile.below(65536)));
    if (hostile.chance(1)) driver.set_avail_idx(static_cast<uint16_t>(hostile.below(65536)));

    for (int pops = 0;; ++pops) {
      // Never loops forever. (A drain can exceed the queue size: writable buffers may overlay
      // the avail ring, and the 0x5a bytes written there move avail->idx.)
      REQUIRE(pops <= 4 * static_cast<int>(queue_size));
      PopResult r = q.pop();
      if (r.status == PopStatus::empty) break;
      if (r.status == PopStatus::broken_ring) {
        ++outcomes["broken_ring"];
        // What a transport does: reset the queue where the driver is now.
        config.last_avail_idx = driver.avail_idx();
        auto fresh = SplitVirtqueue::create(guest.memory, config);
        REQUIRE(fresh.ok());
        q = std::move(fresh).value();
        break;
      }
      if (r.status == PopStatus::bad_chain) {
        ++outcomes[std::string(to_string(r.fault))];
        CHECK(r.chain.readable().empty());
        CHECK(r.chain.writable().empty());
      } else {
        ++outcomes["chain"];
        size_t readable = 0;
        for (const iovec& v : r.chain.readable()) {
          REQUIRE(v.iov_len > 0);
          REQUIRE(in_guest_ram(*guest.memory, v));
          REQUIRE(guest.memory->contains_host(v.iov_base, v.iov_len));
          readable += v.iov_len;
          ++iovecs_checked;
        }
        size_t writable = 0;
        for (const iovec& v : r.chain.writable()) {
          REQUIRE(v.iov_len > 0);
          REQUIRE(in_guest_ram(*guest.memory, v));
          writable += v.iov_len;
          ++iovecs_checked;
        }
        CHECK(readable == r.chain.readable_bytes());
        CHECK(writable == r.chain.writable_bytes());
        CHECK(readable <= config.max_chain_bytes);
        CHECK(writable <= config.max_chain_bytes);
        // Touch every byte handed out, as a backend would: ASan would catch a stray pointer.
        ChainReader reader(r.chain);
        std::vector<std::byte> sink(reader.remaining());
        CHECK(reader.read(sink.data(), sink.size()) == readable);
        ChainWriter writer(r.chain);
        std::vector<std::byte> fill(writer.remaining(), std::byte{0x5a});
        CHECK(writer.write(fill.data(), fill.size()) == writable);
      }
      if (r.completable()) q.push(r.head, static_cast<uint32_t>(r.chain.writable_bytes()));
    }
    (void)q.needs_notify();
    CHECK(q.in_flight() == 0);
  }

  INFO("outcomes seen: " << outcomes.size());
  for (const auto& [what, count] : outcomes)
    UNSCOPED_INFO(what << ": " << count);
  // The generator must reach both good chains and the interesting faults.
  CHECK(outcomes["chain"] > 200);
  CHECK(outcomes["buffer outside guest memory"] > 0);
  CHECK(outcomes["chain longer than its table (loop)"] > 0);
  CHECK(outcomes["nested indirect descriptor"] > 0);
  CHECK(outcomes["indirect table size invalid"] > 0);
  CHECK(outcomes["readable buffer after a writable one"] > 0);
  CHECK(outcomes["head index out of range"] > 0);
  CHECK(outcomes["broken_ring"] > 0);
  CHECK(iovecs_checked > 1000);
}

TEST_CASE("virtqueue survives a guest rewriting descriptors during pops",
          "[vhost_user][virtqueue][fuzz]") {
  FakeGuest guest;
  FakeDriver driver(guest, queue_size);
  SplitVirtqueue q = driver.queue(true, true);

  // The guest's scribbler: rewrites descriptors and an indirect table as fast as it can, with
  // atomic stores (the race is the point; a torn 16-byte descriptor is just more garbage).
  std::atomic<bool> stop{false};
  std::thread scribbler([&] {
    Hostile hostile(42);
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t target = hostile.chance(50) ? driver.desc_gpa + 16 * hostile.below(queue_size)
                                                 : table_a + 16 * hostile.below(table_entries);
      const vring_desc d = hostile.desc(hostile.chance(50) ? queue_size : table_entries);
      uint64_t words[2];
      std::memcpy(words, &d, sizeof words);
      auto* p = reinterpret_cast<uint64_t*>(guest.at(target));
      std::atomic_ref<uint64_t>(p[0]).store(words[0], std::memory_order_relaxed);
      std::atomic_ref<uint64_t>(p[1]).store(words[1], std::memory_order_relaxed);
    }
  });

  Hostile driver_rng(7);
  int chains = 0;
  for (int i = 0; i < 20000; ++i) {
    driver.publish(static_cast<uint16_t>(driver_rng.below(queue_size)));
    PopResult r = q.pop();
    REQUIRE(r.status != PopStatus::empty);
    REQUIRE(r.status != PopStatus::broken_ring);
    if (r.status == PopStatus::chain) {
      ++chains;
      for (const iovec& v : r.chain.readable())
        REQUIRE(in_guest_ram(*guest.memory, v));
      for (const iovec& v : r.chain.writable())
        REQUIRE(in_guest_ram(*guest.memory, v));
    }
    REQUIRE(r.completable());
    q.push(r.head, 0);
  }
  stop = true;
  scribbler.join();
  CHECK(q.in_flight() == 0);
  CHECK(q.used_idx() == static_cast<uint16_t>(20000));
  CHECK(chains > 0);
}
