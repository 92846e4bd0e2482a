// A statistics counter with exactly one writer thread and any number of readers.
#pragma once

#include <atomic>
#include <cstdint>

namespace sandfs::fuse_dev {

// The increment is a relaxed load + store, not a locked read-modify-write: correct because only
// the owning thread writes, and free of bus locks on the request path.
class ThreadCounter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

}  // namespace sandfs::fuse_dev
