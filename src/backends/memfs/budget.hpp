// Budget: a limited, shared quantity (bytes of capacity, inode slots) with lock-free reservation.
//
// Every mutation that needs space reserves ALL of it first, then mutates; if the reservation fails
// nothing has changed. The reservation is a compare-and-swap, so two racing writers can never both
// pass a "used + n <= limit" check and overshoot together.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace sandfs::memfs {

class Budget {
 public:
  Budget(uint64_t limit, uint64_t used) : limit_(limit), used_(used) {}

  bool try_reserve(uint64_t n) {
    if (n == 0) return true;
    uint64_t cur = used_.load(std::memory_order_relaxed);
    do {
      if (n > limit_ || cur > limit_ - n) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n, std::memory_order_relaxed));
    return true;
  }

  // Reserves as much of n as is free, in whole units; returns the amount reserved (maybe 0).
  uint64_t reserve_up_to(uint64_t n, uint64_t unit) {
    uint64_t cur = used_.load(std::memory_order_relaxed);
    uint64_t take = 0;
    do {
      const uint64_t free = cur >= limit_ ? 0 : limit_ - cur;
      take = std::min(n, free / unit * unit);
      if (take == 0) return 0;
    } while (!used_.compare_exchange_weak(cur, cur + take, std::memory_order_relaxed));
    return take;
  }

  void release(uint64_t n) {
    if (n != 0) used_.fetch_sub(n, std::memory_order_relaxed);
  }

  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_;
};

// Gives a reservation back unless the operation that needed it committed.
class Reservation {
 public:
  Reservation(Budget& budget, uint64_t amount) : budget_(budget), amount_(amount) {}
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  ~Reservation() { budget_.release(amount_); }

  void commit() { amount_ = 0; }

 private:
  Budget& budget_;
  uint64_t amount_;
};

}  // namespace sandfs::memfs
