#include "transport/fuse_dev/request_buffers.hpp"

#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

using sandfs::fuse_dev::RequestBuffers;

TEST_CASE("request buffers are page-aligned and rounded up to pages", "[transport][buffers]") {
  RequestBuffers pool((1u << 20) + 4096 + 1);
  CHECK(pool.buffer_size() == (1u << 20) + 8192);
  std::byte* b = pool.acquire();
  CHECK(reinterpret_cast<uintptr_t>(b) % 4096 == 0);
  std::memset(b, 0xab, pool.buffer_size());  // the whole size is usable
  pool.release(b);
}

TEST_CASE("released buffers are reused without allocating", "[transport][buffers]") {
  RequestBuffers pool(8192);
  std::vector<std::byte*> held;
  for (int i = 0; i < 8; ++i)
    held.push_back(pool.acquire());
  CHECK(pool.allocations() == 8);
  CHECK(pool.in_use() == 8);
  const std::set<std::byte*> first(held.begin(), held.end());
  for (auto* b : held)
    pool.release(b);
  CHECK(pool.free_count() == 8);
  CHECK(pool.in_use() == 0);

  // A steady state of up to 8 requests in flight allocates nothing more.
  for (int round = 0; round < 1000; ++round) {
    std::byte* a = pool.acquire();
    std::byte* b = pool.acquire();
    CHECK(first.count(a) == 1);
    CHECK(first.count(b) == 1);
    CHECK(a != b);
    pool.release(a);
    pool.release(b);
  }
  CHECK(pool.allocations() == 8);
}

TEST_CASE("the pool keeps at most max_free idle buffers", "[transport][buffers]") {
  RequestBuffers pool(4096, 2);
  std::vector<std::byte*> held;
  for (int i = 0; i < 5; ++i)
    held.push_back(pool.acquire());
  for (auto* b : held)
    pool.release(b);
  CHECK(pool.free_count() == 2);
  held.clear();
  for (int i = 0; i < 3; ++i)
    held.push_back(pool.acquire());
  CHECK(pool.allocations() == 6);  // two reused, one new
  for (auto* b : held)
    pool.release(b);
  pool.release(nullptr);  // ignored
  CHECK(pool.in_use() == 0);
}
