#include "transport/vhost_user/virtqueue.hpp"

#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fake_guest.hpp"

using namespace sandfs::vhost_user;
using sandfs::vhost_user::testing::buf_a;
using sandfs::vhost_user::testing::buf_b;
using sandfs::vhost_user::testing::FakeDriver;
using sandfs::vhost_user::testing::FakeGuest;

namespace {

constexpr uint16_t NEXT = VRING_DESC_F_NEXT;
constexpr uint16_t WRITE = VRING_DESC_F_WRITE;
constexpr uint16_t INDIRECT = VRING_DESC_F_INDIRECT;

// Pops one chain and expects it to be bad for `fault`; completes it with 0 bytes like a
// transport would, and checks the used ring got it.
void expect_bad(SplitVirtqueue& q, FakeDriver& driver, uint16_t head, ChainFault fault) {
  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::bad_chain);
  CHECK(to_string(r.fault) == to_string(fault));
  CHECK(r.head == head);
  CHECK(r.chain.readable().empty());
  CHECK(r.chain.writable().empty());
  REQUIRE(r.completable());
  const uint16_t used_before = driver.used_idx();
  q.push(r.head, 0);
  CHECK(driver.used_idx() == static_cast<uint16_t>(used_before + 1));
  const vring_used_elem e = driver.used_elem(used_before);
  CHECK(e.id == head);
  CHECK(e.len == 0);
}

}  // namespace

TEST_CASE("virtqueue setup checks size alignment and ring placement", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 256);
  auto fault_of = [&](const VirtqueueConfig& c) {
    auto q = SplitVirtqueue::create(guest.memory, c);
    REQUIRE_FALSE(q.ok());
    return q.error();
  };
  CHECK(SplitVirtqueue::create(guest.memory, driver.config()).ok());
  for (uint32_t size : {0u, 3u, 100u, 65536u, 1u << 20}) {
    VirtqueueConfig c = driver.config();
    c.size = size;
    CHECK(fault_of(c) == QueueSetupFault::bad_size);
  }
  {
    VirtqueueConfig c = driver.config();
    c.size = 1;  // the smallest power of two is a valid (if odd) queue
    CHECK(SplitVirtqueue::create(guest.memory, c).ok());
  }
  {
    VirtqueueConfig c = driver.config();
    c.desc_addr += 8;
    CHECK(fault_of(c) == QueueSetupFault::misaligned);
    c = driver.config();
    c.avail_addr += 1;
    CHECK(fault_of(c) == QueueSetupFault::misaligned);
    c = driver.config();
    c.used_addr += 2;
    CHECK(fault_of(c) == QueueSetupFault::misaligned);
  }
  {
    // A table that runs off the end of region A into the hole.
    VirtqueueConfig c = driver.config();
    c.desc_addr = FakeGuest::user_of(FakeGuest::a_gpa + FakeGuest::a_size - 16 * 128);
    CHECK(fault_of(c) == QueueSetupFault::desc_out_of_range);
    c.desc_addr = 0x1000;  // not a user address at all
    CHECK(fault_of(c) == QueueSetupFault::desc_out_of_range);
  }
  {
    // The avail ring fits without used_event but not with it (EVENT_IDX).
    VirtqueueConfig c = driver.config();
    c.avail_addr =
        FakeGuest::user_of(FakeGuest::b_gpa + FakeGuest::b_size - vring_avail_bytes(256, false));
    CHECK(SplitVirtqueue::create(guest.memory, c).ok());
    c.event_idx = true;
    CHECK(fault_of(c) == QueueSetupFault::avail_out_of_range);
  }
  {
    VirtqueueConfig c = driver.config();
    c.used_addr =
        FakeGuest::user_of(FakeGuest::b_gpa + FakeGuest::b_size - vring_used_bytes(256, false));
    CHECK(SplitVirtqueue::create(guest.memory, c).ok());
    c.event_idx = true;
    CHECK(fault_of(c) == QueueSetupFault::used_out_of_range);
  }
  {
    // Guest physical ring addresses, as a simulator may give them.
    VirtqueueConfig c = driver.config();
    c.address_space = RingAddressSpace::guest_physical;
    c.desc_addr = driver.desc_gpa;
    c.avail_addr = driver.avail_gpa;
    c.used_addr = driver.used_gpa;
    CHECK(SplitVirtqueue::create(guest.memory, c).ok());
  }
  {
    // The largest queue: 512 KiB of descriptors in A, the used ring in B.
    VirtqueueConfig c;
    c.size = 32768;
    c.desc_addr = FakeGuest::user_of(FakeGuest::a_gpa);
    c.avail_addr = FakeGuest::user_of(FakeGuest::a_gpa + 16 * 32768);
    c.used_addr = FakeGuest::user_of(FakeGuest::b_gpa);
    c.event_idx = true;
    auto q = SplitVirtqueue::create(guest.memory, c);
    REQUIRE(q.ok());
    CHECK(q->max_indirect_entries() == 32768);
  }
}

TEST_CASE("virtqueue pops nothing from an empty ring", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  PopResult r = q.pop();
  CHECK(r.status == PopStatus::empty);
  CHECK_FALSE(r.completable());
  CHECK(q.last_avail_idx() == 0);
  CHECK(q.in_flight() == 0);
}

TEST_CASE("virtqueue pops a single readable buffer", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  std::memcpy(guest.at(buf_a), "hello guest", 11);
  driver.desc(5, buf_a, 11, 0);
  driver.publish(5);

  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  CHECK(r.completable());
  CHECK(r.head == 5);
  CHECK(r.chain.head() == 5);
  REQUIRE(r.chain.readable().size() == 1);
  CHECK(r.chain.writable().empty());
  CHECK(r.chain.readable_bytes() == 11);
  CHECK(r.chain.writable_bytes() == 0);
  CHECK(r.chain.readable()[0].iov_base == guest.memory->translate(buf_a, 11));
  CHECK(std::memcmp(r.chain.readable()[0].iov_base, "hello guest", 11) == 0);
  CHECK(q.last_avail_idx() == 1);
  CHECK(q.in_flight() == 1);
  CHECK(q.pop().status == PopStatus::empty);

  q.push(5, 0);
  CHECK(q.in_flight() == 0);
  CHECK(driver.used_idx() == 1);
  CHECK(driver.used_elem(0).id == 5);
}

TEST_CASE("virtqueue splits readable and writable buffers", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 64);
  SplitVirtqueue q = driver.queue();
  // head 10: two readable (A, then B), then two writable (B, then A): crossing regions is fine
  // as long as each buffer lies in one.
  driver.desc(10, buf_a, 40, NEXT, 3);
  driver.desc(3, buf_b, 24, NEXT, 63);
  driver.desc(63, buf_b + 4096, 100, NEXT | WRITE, 0);
  driver.desc(0, buf_a + 8192, 4096, WRITE);
  driver.publish(10);

  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  REQUIRE(r.chain.readable().size() == 2);
  REQUIRE(r.chain.writable().size() == 2);
  CHECK(r.chain.readable()[0].iov_base == guest.memory->translate(buf_a, 1));
  CHECK(r.chain.readable()[0].iov_len == 40);
  CHECK(r.chain.readable()[1].iov_base == guest.memory->translate(buf_b, 1));
  CHECK(r.chain.readable()[1].iov_len == 24);
  CHECK(r.chain.writable()[0].iov_base == guest.memory->translate(buf_b + 4096, 1));
  CHECK(r.chain.writable()[0].iov_len == 100);
  CHECK(r.chain.writable()[1].iov_base == guest.memory->translate(buf_a + 8192, 1));
  CHECK(r.chain.writable()[1].iov_len == 4096);
  CHECK(r.chain.readable_bytes() == 64);
  CHECK(r.chain.writable_bytes() == 4196);

  // A reply through the writable iovecs reaches the guest's buffers.
  std::memset(r.chain.writable()[0].iov_base, 'x', 100);
  q.push(r.head, 100);
  CHECK(guest.get<char>(buf_b + 4096 + 99) == 'x');
  CHECK(driver.used_elem(0).id == 10);
  CHECK(driver.used_elem(0).len == 100);
}

TEST_CASE("virtqueue pops a writable-only chain", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8);
  SplitVirtqueue q = driver.queue();
  driver.desc(1, buf_a, 512, WRITE | NEXT, 2);
  driver.desc(2, buf_b, 512, WRITE);
  driver.publish(1);
  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  CHECK(r.chain.readable().empty());
  CHECK(r.chain.writable().size() == 2);
}

TEST_CASE("virtqueue rejects buffers outside guest memory", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  const uint64_t a_end = FakeGuest::a_gpa + FakeGuest::a_size;
  const uint64_t b_end = FakeGuest::b_gpa + FakeGuest::b_size;
  const uint64_t u64_max = std::numeric_limits<uint64_t>::max();

  struct Case {
    const char* what;
    uint64_t addr;
    uint32_t len;
  };
  const Case cases[] = {
      {"straddles the end of A into the hole", a_end - 8, 16},
      {"in the hole", a_end + 0x1000, 16},
      {"straddles the hole into B", FakeGuest::b_gpa - 8, 16},
      {"straddles the end of B", b_end - 1, 2},
      {"below all regions", 0, 16},
      {"far above", 0x100000000ull, 4096},
      {"at the top of the address space", u64_max - 3, 4},
      {"wraps past 2^64", u64_max - 7, 16},
      {"wraps into region A", u64_max - 0xff, 0xffff0000u},
      {"all of A and more", FakeGuest::a_gpa, static_cast<uint32_t>(FakeGuest::a_size + 1)},
  };
  uint16_t head = 0;
  for (const Case& c : cases) {
    INFO(c.what);
    // As the only buffer, and as the second (writable) one of a chain.
    driver.desc(head, c.addr, c.len, 0);
    driver.publish(head);
    expect_bad(q, driver, head, ChainFault::buffer_out_of_range);
    driver.desc(head, buf_a, 16, NEXT, 15);
    driver.desc(15, c.addr, c.len, WRITE);
    driver.publish(head);
    expect_bad(q, driver, head, ChainFault::buffer_out_of_range);
    head = static_cast<uint16_t>((head + 1) % 15);
  }
  // Every bad chain was completed and the queue still works.
  CHECK(q.in_flight() == 0);
  driver.desc(3, buf_b, 16, 0);
  driver.publish(3);
  CHECK(q.pop().status == PopStatus::chain);
}

TEST_CASE("virtqueue accepts buffers at the very edges of regions", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  driver.desc(0, FakeGuest::a_gpa + FakeGuest::a_size - 16, 16, NEXT, 1);
  driver.desc(1, FakeGuest::b_gpa, static_cast<uint32_t>(FakeGuest::b_size), WRITE);
  driver.publish(0);
  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  CHECK(r.chain.writable_bytes() == FakeGuest::b_size);
}

TEST_CASE("virtqueue skips zero-length descriptors", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  // The address of an empty buffer is never looked at, even when it is garbage.
  driver.desc(0, 0xdead0000beef, 0, NEXT, 1);
  driver.desc(1, buf_a, 8, NEXT, 2);
  driver.desc(2, std::numeric_limits<uint64_t>::max(), 0, WRITE | NEXT, 3);
  driver.desc(3, buf_b, 8, WRITE);
  driver.publish(0);
  PopResult r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  CHECK(r.chain.readable().size() == 1);
  CHECK(r.chain.writable().size() == 1);

  // A chain of nothing but empty buffers is a valid, empty chain.
  driver.desc(4, 0, 0, 0);
  driver.publish(4);
  r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  CHECK(r.chain.readable().empty());
  CHECK(r.chain.writable().empty());

  // An empty writable one still orders: a readable one may not follow it.
  driver.desc(5, buf_a, 0, WRITE | NEXT, 6);
  driver.desc(6, buf_a, 8, 0);
  driver.publish(5);
  expect_bad(q, driver, 5, ChainFault::readable_after_writable);
}

TEST_CASE("virtqueue detects descriptor loops", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8);
  SplitVirtqueue q = driver.queue();

  SECTION("a descriptor pointing at itself") {
    driver.desc(2, buf_a, 16, NEXT, 2);
    driver.publish(2);
    expect_bad(q, driver, 2, ChainFault::too_long);
  }
  SECTION("a cycle back to the head") {
    driver.desc(0, buf_a, 16, NEXT, 1);
    driver.desc(1, buf_a, 16, NEXT, 2);
    driver.desc(2, buf_a, 16, NEXT, 0);
    driver.publish(0);
    expect_bad(q, driver, 0, ChainFault::too_long);
  }
  SECTION("a cycle of writable buffers behind the head") {
    driver.desc(0, buf_a, 16, NEXT, 5);
    driver.desc(5, buf_a, 16, NEXT | WRITE, 6);
    driver.desc(6, buf_a, 16, NEXT | WRITE, 5);
    driver.publish(0);
    expect_bad(q, driver, 0, ChainFault::too_long);
  }
  SECTION("a chain through every descriptor is not a loop") {
    for (uint16_t i = 0; i < 8; ++i)
      driver.desc(i, buf_a + i * 64, 64, i < 7 ? NEXT : 0, static_cast<uint16_t>(i + 1));
    driver.publish(0);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    CHECK(r.chain.readable().size() == 8);
    q.push(r.head, 0);
  }
  SECTION("a chain longer than the queue") {
    // Nine links in an eight-entry table: one descriptor is used twice.
    for (uint16_t i = 0; i < 8; ++i)
      driver.desc(i, buf_a + i * 64, 64, NEXT, static_cast<uint16_t>(i + 1));
    driver.desc(7, buf_a, 64, NEXT, 3);
    driver.publish(0);
    expect_bad(q, driver, 0, ChainFault::too_long);
  }
  CHECK(q.in_flight() == 0);
}

TEST_CASE("virtqueue rejects indices outside the table", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();

  // A next index out of range.
  driver.desc(1, buf_a, 16, NEXT, 16);
  driver.publish(1);
  expect_bad(q, driver, 1, ChainFault::next_out_of_range);
  driver.desc(1, buf_a, 16, NEXT, 0xffff);
  driver.publish(1);
  expect_bad(q, driver, 1, ChainFault::next_out_of_range);

  // A head out of range: consumed but not completable (there is no such descriptor).
  driver.publish(16);
  PopResult r = q.pop();
  CHECK(r.status == PopStatus::bad_chain);
  CHECK(r.fault == ChainFault::head_out_of_range);
  CHECK(r.head == 16);
  CHECK_FALSE(r.completable());
  CHECK(q.in_flight() == 0);
  driver.publish(0xffff);
  r = q.pop();
  CHECK(r.fault == ChainFault::head_out_of_range);
  CHECK(r.head == 0xffff);

  // And the queue goes on.
  driver.desc(4, buf_a, 16, 0);
  driver.publish(4);
  r = q.pop();
  REQUIRE(r.status == PopStatus::chain);
  CHECK(r.head == 4);
  CHECK(q.last_avail_idx() == 5);
}

TEST_CASE("virtqueue rejects a readable buffer after a writable one", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  driver.desc(0, buf_a, 16, NEXT, 1);
  driver.desc(1, buf_a + 16, 16, NEXT | WRITE, 2);
  driver.desc(2, buf_a + 32, 16, 0);
  driver.publish(0);
  expect_bad(q, driver, 0, ChainFault::readable_after_writable);
}

TEST_CASE("virtqueue bounds the bytes of a chain", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  VirtqueueConfig c = driver.config();
  c.max_chain_bytes = 4096;
  auto made = SplitVirtqueue::create(guest.memory, c);
  REQUIRE(made.ok());
  SplitVirtqueue q = std::move(made).value();

  // 4096 each way is fine.
  driver.desc(0, buf_a, 2048, NEXT, 1);
  driver.desc(1, buf_a, 2048, NEXT, 2);
  driver.desc(2, buf_b, 4096, WRITE);
  driver.publish(0);
  CHECK(q.pop().status == PopStatus::chain);
  // 4097 readable bytes are not.
  driver.desc(3, buf_a, 4096, NEXT, 4);
  driver.desc(4, buf_a, 1, 0);
  driver.publish(3);
  expect_bad(q, driver, 3, ChainFault::too_many_bytes);
  // Nor writable ones (the same buffer twice counts twice).
  driver.desc(5, buf_a, 4000, WRITE | NEXT, 6);
  driver.desc(6, buf_a, 4000, WRITE);
  driver.publish(5);
  expect_bad(q, driver, 5, ChainFault::too_many_bytes);
  CHECK(VirtqueueConfig::default_max_chain_bytes == 64u << 20);
}

TEST_CASE("virtqueue follows indirect tables", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue(false, true);
  const uint64_t table = buf_b + 0x10000;

  SECTION("a table as the only descriptor") {
    guest.put_desc(table, 0, buf_a, 48, NEXT, 2);
    guest.put_desc(table, 2, buf_a + 100, 16, NEXT, 1);
    guest.put_desc(table, 1, buf_b, 4096, WRITE);
    // The device ignores WRITE on the descriptor that points to the table.
    driver.desc(7, table, 3 * 16, INDIRECT | WRITE);
    driver.publish(7);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    CHECK(r.head == 7);
    REQUIRE(r.chain.readable().size() == 2);
    REQUIRE(r.chain.writable().size() == 1);
    CHECK(r.chain.readable()[1].iov_base == guest.memory->translate(buf_a + 100, 1));
    CHECK(r.chain.writable_bytes() == 4096);
  }
  SECTION("direct descriptors ending in a table") {
    guest.put_desc(table, 0, buf_b, 64, WRITE);
    driver.desc(0, buf_a, 32, NEXT, 9);
    driver.desc(9, table, 16, INDIRECT);
    driver.publish(0);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    CHECK(r.chain.readable_bytes() == 32);
    CHECK(r.chain.writable_bytes() == 64);
  }
  SECTION("a table at an address that is not 8-aligned") {
    const uint64_t odd = table + 4;
    guest.put_desc(odd, 0, buf_a, 10, NEXT, 1);
    guest.put_desc(odd, 1, buf_b, 20, WRITE);
    driver.desc(1, odd, 32, INDIRECT);
    driver.publish(1);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    CHECK(r.chain.readable_bytes() == 10);
    CHECK(r.chain.writable_bytes() == 20);
  }
  SECTION("a table of the largest size accepted") {
    const uint32_t n = q.max_indirect_entries();
    CHECK(n == 1024);  // max(queue size 16, 1024)
    for (uint32_t i = 0; i < n; ++i)
      guest.put_desc(table, i, buf_a + i, 1, i + 1 < n ? NEXT : 0, static_cast<uint16_t>(i + 1));
    driver.desc(2, table, n * 16, INDIRECT);
    driver.publish(2);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    CHECK(r.chain.readable().size() == n);
    CHECK(r.chain.readable_bytes() == n);
  }
  SECTION("bad tables") {
    // Nested.
    guest.put_desc(table, 0, buf_a, 16, NEXT, 1);
    guest.put_desc(table, 1, table, 32, INDIRECT);
    driver.desc(0, table, 32, INDIRECT);
    driver.publish(0);
    expect_bad(q, driver, 0, ChainFault::nested_indirect);
    // Sizes: empty, not a multiple of 16, one entry over the limit.
    for (uint32_t len : {0u, 8u, 24u, 17u, (q.max_indirect_entries() + 1) * 16}) {
      INFO(len);
      driver.desc(1, table, len, INDIRECT);
      driver.publish(1);
      expect_bad(q, driver, 1, ChainFault::indirect_bad_size);
    }
    // Outside guest memory, or straddling the end of a region.
    driver.desc(2, FakeGuest::a_gpa + FakeGuest::a_size + 64, 32, INDIRECT);
    driver.publish(2);
    expect_bad(q, driver, 2, ChainFault::indirect_out_of_range);
    driver.desc(2, FakeGuest::b_gpa + FakeGuest::b_size - 16, 32, INDIRECT);
    driver.publish(2);
    expect_bad(q, driver, 2, ChainFault::indirect_out_of_range);
    driver.desc(2, std::numeric_limits<uint64_t>::max() - 15, 32, INDIRECT);
    driver.publish(2);
    expect_bad(q, driver, 2, ChainFault::indirect_out_of_range);
    // INDIRECT with NEXT.
    driver.desc(3, table, 32, INDIRECT | NEXT, 4);
    driver.desc(4, buf_a, 16, 0);
    driver.publish(3);
    expect_bad(q, driver, 3, ChainFault::indirect_with_next);
    // A loop inside the table.
    guest.put_desc(table, 0, buf_a, 16, NEXT, 1);
    guest.put_desc(table, 1, buf_a, 16, NEXT, 0);
    driver.desc(5, table, 32, INDIRECT);
    driver.publish(5);
    expect_bad(q, driver, 5, ChainFault::too_long);
    // A next index beyond the table (though inside the ring's own table size).
    guest.put_desc(table, 0, buf_a, 16, NEXT, 2);
    driver.desc(6, table, 32, INDIRECT);
    driver.publish(6);
    expect_bad(q, driver, 6, ChainFault::next_out_of_range);
    // A buffer outside guest memory in the table.
    guest.put_desc(table, 0, FakeGuest::a_gpa - 16, 32, 0);
    driver.desc(7, table, 16, INDIRECT);
    driver.publish(7);
    expect_bad(q, driver, 7, ChainFault::buffer_out_of_range);
    // Readable after writable across the table boundary.
    guest.put_desc(table, 0, buf_a, 16, 0);
    driver.desc(8, buf_b, 16, WRITE | NEXT, 9);
    driver.desc(9, table, 16, INDIRECT);
    driver.publish(8);
    expect_bad(q, driver, 8, ChainFault::readable_after_writable);
    CHECK(q.in_flight() == 0);
  }
}

TEST_CASE("virtqueue refuses indirect tables unless negotiated", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue(false, false);
  guest.put_desc(buf_b, 0, buf_a, 16, 0);
  driver.desc(0, buf_b, 16, INDIRECT);
  driver.publish(0);
  expect_bad(q, driver, 0, ChainFault::indirect_not_negotiated);
}

TEST_CASE("virtqueue stops on an avail index too far ahead", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 16);
  SplitVirtqueue q = driver.queue();
  for (uint16_t i = 0; i < 16; ++i)
    driver.desc(i, buf_a, 16, 0);

  // Exactly `size` outstanding is legal.
  for (uint16_t i = 0; i < 16; ++i)
    driver.publish(i);
  for (int i = 0; i < 16; ++i)
    REQUIRE(q.pop().status == PopStatus::chain);
  CHECK(q.pop().status == PopStatus::empty);

  // 17 ahead is not, and the queue stays stopped without consuming anything.
  driver.set_avail_idx(static_cast<uint16_t>(q.last_avail_idx() + 17));
  CHECK(q.pop().status == PopStatus::broken_ring);
  CHECK(q.broken());
  CHECK(q.last_avail_idx() == 16);
  driver.set_avail_idx(17);
  CHECK(q.pop().status == PopStatus::broken_ring);

  // "Behind" is the same as far ahead modulo 2^16.
  FakeDriver driver2(guest, 16, 100);
  SplitVirtqueue q2 = driver2.queue();
  driver2.set_avail_idx(99);
  CHECK(q2.pop().status == PopStatus::broken_ring);
}

TEST_CASE("virtqueue stops when more heads are offered than it holds", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 4);
  SplitVirtqueue q = driver.queue();
  driver.desc(0, buf_a, 16, 0);
  // A legitimate driver never offers a head we have not returned; this one offers head 0 over
  // and over while we hold it.
  for (int i = 0; i < 4; ++i) {
    driver.publish(0);
    REQUIRE(q.pop().status == PopStatus::chain);
  }
  CHECK(q.in_flight() == 4);
  driver.publish(0);
  CHECK(q.pop().status == PopStatus::broken_ring);
  CHECK(q.last_avail_idx() == 4);
  // What was popped can still be completed.
  for (int i = 0; i < 4; ++i)
    q.push(0, 0);
  CHECK(driver.used_idx() == 4);
  CHECK(q.pop().status == PopStatus::broken_ring);
}

TEST_CASE("virtqueue publishes used entries across 16-bit index wrap", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8, 65530);  // avail and used idx both start at 65530
  SplitVirtqueue q = driver.queue();
  CHECK(q.last_avail_idx() == 65530);
  CHECK(q.used_idx() == 65530);
  for (uint16_t i = 0; i < 8; ++i)
    driver.desc(i, buf_a + i * 16, 16, WRITE);

  uint32_t expected_used = 65530;
  for (int round = 0; round < 20; ++round) {
    const auto head = static_cast<uint16_t>((round * 3) % 8);
    driver.publish(head);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    CHECK(r.head == head);
    q.push(r.head, static_cast<uint32_t>(round));
    const vring_used_elem e = driver.used_elem(expected_used % 8);
    CHECK(e.id == head);
    CHECK(e.len == static_cast<uint32_t>(round));
    ++expected_used;
    CHECK(driver.used_idx() == static_cast<uint16_t>(expected_used));
  }
  CHECK(q.last_avail_idx() == static_cast<uint16_t>(65530 + 20));
  CHECK(q.used_idx() == 14);

  // Several in flight, completed out of order.
  for (uint16_t i = 0; i < 8; ++i)
    driver.publish(i);
  std::vector<uint16_t> heads;
  for (int i = 0; i < 8; ++i) {
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    heads.push_back(r.head);
  }
  CHECK(q.in_flight() == 8);
  for (auto it = heads.rbegin(); it != heads.rend(); ++it)
    q.push(*it, 1);
  CHECK(driver.used_idx() == 22);
  CHECK(driver.used_elem(14).id == 7);
  CHECK(driver.used_elem(21).id == 0);
}

TEST_CASE("virtqueue push refuses caller bugs", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8);
  SplitVirtqueue q = driver.queue();
  CHECK_THROWS_AS(q.push(0, 0), std::logic_error);  // nothing in flight
  driver.desc(0, buf_a, 16, 0);
  driver.publish(0);
  REQUIRE(q.pop().status == PopStatus::chain);
  CHECK_THROWS_AS(q.push(8, 0), std::logic_error);
  q.push(0, 0);
  CHECK(driver.used_idx() == 1);
}

TEST_CASE("vring_need_event follows the spec across index wrap", "[vhost_user][virtqueue]") {
  // Notify when the event index lies in [old, new).
  CHECK(vring_need_event(0, 1, 0));
  CHECK_FALSE(vring_need_event(1, 1, 0));
  CHECK(vring_need_event(5, 10, 0));
  CHECK(vring_need_event(9, 10, 5));
  CHECK(vring_need_event(5, 10, 5));
  CHECK_FALSE(vring_need_event(4, 10, 5));
  CHECK_FALSE(vring_need_event(10, 10, 5));
  CHECK_FALSE(vring_need_event(3, 3, 3));  // nothing new
  // Wrap: old 65534, new 2 (four entries: 65534, 65535, 0, 1).
  CHECK(vring_need_event(65534, 2, 65534));
  CHECK(vring_need_event(65535, 2, 65534));
  CHECK(vring_need_event(0, 2, 65534));
  CHECK(vring_need_event(1, 2, 65534));
  CHECK_FALSE(vring_need_event(2, 2, 65534));
  CHECK_FALSE(vring_need_event(65533, 2, 65534));
  // A full 2^15 step.
  CHECK(vring_need_event(100, 32868, 100));
}

TEST_CASE("virtqueue notification with EVENT_IDX uses used_event", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8, 65533);
  SplitVirtqueue q = driver.queue(true, false);
  for (uint16_t i = 0; i < 8; ++i)
    driver.desc(i, buf_a, 16, WRITE);
  auto complete_one = [&] {
    driver.publish(1);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    q.push(r.head, 16);
  };

  CHECK_FALSE(q.needs_notify());  // nothing pushed yet

  // The first decision after setup always signals.
  driver.set_used_event(0);
  complete_one();  // used 65534
  CHECK(q.needs_notify());
  CHECK_FALSE(q.needs_notify());  // nothing new since

  // The driver wants to hear once entry 65535 is used... not after 65534 again.
  driver.set_used_event(65535);
  complete_one();  // used 65535: entry 65534 done, 65535 not yet
  CHECK_FALSE(q.needs_notify());
  complete_one();  // used 0 (wrapped): entry 65535 done
  CHECK(q.needs_notify());

  // An event index far ahead: no signals until it is passed.
  driver.set_used_event(3);
  complete_one();  // used 1
  CHECK_FALSE(q.needs_notify());
  complete_one();  // used 2
  CHECK_FALSE(q.needs_notify());
  complete_one();  // used 3
  CHECK_FALSE(q.needs_notify());
  complete_one();  // used 4: entry 3 done
  CHECK(q.needs_notify());

  // A batch that passes the event index in the middle signals once.
  driver.set_used_event(5);
  complete_one();
  complete_one();
  complete_one();  // used 7, passing 5
  CHECK(q.needs_notify());

  // The VRING_AVAIL_F_NO_INTERRUPT flag means nothing under EVENT_IDX.
  driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
  driver.set_used_event(7);
  complete_one();
  CHECK(q.needs_notify());
}

TEST_CASE("virtqueue notification without EVENT_IDX uses the avail flags",
          "[vhost_user][virtqueue]") {
  FakeGuest guest;
  FakeDriver driver(guest, 8);
  SplitVirtqueue q = driver.queue(false, false);
  driver.desc(0, buf_a, 16, WRITE);
  auto complete_one = [&] {
    driver.publish(0);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    q.push(r.head, 0);
  };
  complete_one();
  CHECK(q.needs_notify());
  CHECK_FALSE(q.needs_notify());
  driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
  complete_one();
  CHECK_FALSE(q.needs_notify());
  driver.set_avail_flags(0);
  driver.set_used_event(0);  // ignored without EVENT_IDX
  complete_one();
  CHECK(q.needs_notify());
}

TEST_CASE("virtqueue kick suppression re-checks after enabling", "[vhost_user][virtqueue]") {
  FakeGuest guest;
  SECTION("without EVENT_IDX: the NO_NOTIFY flag") {
    FakeDriver driver(guest, 8);
    SplitVirtqueue q = driver.queue(false, false);
    driver.desc(0, buf_a, 16, 0);
    q.disable_notification();
    CHECK(driver.used_flags() == VRING_USED_F_NO_NOTIFY);
    CHECK_FALSE(q.enable_notification());
    CHECK(driver.used_flags() == 0);
    // A buffer published while kicks were off is found by the re-check.
    q.disable_notification();
    driver.publish(0);
    CHECK(q.enable_notification());
    REQUIRE(q.pop().status == PopStatus::chain);
    CHECK_FALSE(q.enable_notification());
  }
  SECTION("with EVENT_IDX: avail_event") {
    FakeDriver driver(guest, 8, 65535);
    SplitVirtqueue q = driver.queue(true, false);
    driver.desc(0, buf_a, 16, 0);
    q.disable_notification();  // nothing to write
    CHECK(driver.used_flags() == 0);
    CHECK_FALSE(q.enable_notification());
    CHECK(driver.avail_event() == 65535);
    driver.publish(0);
    CHECK(q.enable_notification());
    REQUIRE(q.pop().status == PopStatus::chain);
    CHECK_FALSE(q.enable_notification());
    CHECK(driver.avail_event() == 0);  // wrapped with last_avail_idx
    CHECK(q.last_avail_idx() == 0);
  }
}

TEST_CASE("a popped chain keeps guest memory mapped", "[vhost_user][virtqueue]") {
  DescriptorChain chain;
  {
    FakeGuest guest;
    FakeDriver driver(guest, 8);
    SplitVirtqueue q = driver.queue();
    std::memcpy(guest.at(buf_b), "still here", 10);
    driver.desc(0, buf_b, 10, 0);
    driver.publish(0);
    PopResult r = q.pop();
    REQUIRE(r.status == PopStatus::chain);
    chain = std::move(r.chain);
    guest.memory.reset();  // the table is replaced...
  }                        // ...and the queue, the fake guest's own mapping and its memfd are gone
  REQUIRE(chain.memory() != nullptr);
  REQUIRE(chain.readable().size() == 1);
  CHECK(std::memcmp(chain.readable()[0].iov_base, "still here", 10) == 0);
}
