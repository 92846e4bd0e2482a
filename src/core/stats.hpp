// Per-mount request statistics: counts and errors per opcode, errors by errno, bytes moved,
// latency histogram, requests in flight, and the backend's copy-ups. Updated with relaxed atomics
// from every thread; read as a consistent-enough snapshot for the admin API and logs.
//
// Stats is a Hook (hooks.hpp): every Session puts its Stats first in the mount's hook chain, so
// requests are counted by before()/after() and copy-ups by event(), exactly as any other hook
// sees them. It never refuses anything.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/hooks.hpp"

namespace sandfs {

class Stats final : public Hook {
 public:
  // Latency buckets: bucket i counts requests that took < 2^i microseconds (i = 0..31); the
  // last bucket collects everything slower.
  static constexpr size_t latency_buckets = 32;
  static constexpr size_t opcode_slots = 64;  // opcodes >= this are counted in slot 0
  static constexpr size_t errno_slots = 134;  // errnos >= this are counted in slot 0

  struct OpSnapshot {
    uint32_t opcode = 0;
    uint64_t count = 0;
    uint64_t errors = 0;
    uint64_t total_ns = 0;
  };
  struct Snapshot {
    std::vector<OpSnapshot> ops;                            // only opcodes seen
    std::vector<std::pair<int, uint64_t>> errors_by_errno;  // only errnos seen
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;
    uint64_t in_flight = 0;
    uint64_t malformed = 0;  // requests rejected by the decoder
    uint64_t interrupts = 0;
    // Kernel passthrough: opens the kernel serves directly on a host file (no READ/WRITE reach
    // the server for them), opens whose backend offered a host fd but were served the ordinary
    // way, and backing ids registered with the kernel right now.
    uint64_t passthrough_opens = 0;
    uint64_t passthrough_fallbacks = 0;
    uint64_t backing_ids = 0;
    std::array<uint64_t, latency_buckets> latency_us_log2{};
    // Latency percentiles in microseconds (upper bounds of the histogram bucket).
    uint64_t p50_us = 0, p90_us = 0, p99_us = 0, max_bucket_us = 0;
    // Backend events (BackendEvent): copy-ups done and failed, data bytes they copied, their
    // total duration and its histogram (buckets as latency_us_log2); directory promotions.
    uint64_t copy_ups = 0;
    uint64_t copy_up_failures = 0;
    uint64_t copy_up_bytes = 0;
    uint64_t copy_up_total_ns = 0;
    std::array<uint64_t, latency_buckets> copy_up_us_log2{};
    uint64_t promotions = 0;
    uint64_t promotion_failures = 0;
  };

  // Hook: counts the request in flight / finished (opcode, errno, latency, bytes moved), and the
  // backend's copy-ups and promotions.
  int before(const RequestInfo& op) override;
  void after(const RequestOutcome& result) override;
  void event(const BackendEvent& e) override;

  // Messages the Session rejects before any hook sees them (too short, bad lengths).
  void add_malformed() { malformed_.fetch_add(1, std::memory_order_relaxed); }
  void add_passthrough_open() { passthrough_opens_.fetch_add(1, std::memory_order_relaxed); }
  void add_passthrough_fallback() {
    passthrough_fallbacks_.fetch_add(1, std::memory_order_relaxed);
  }
  void backing_id_opened() { backing_ids_.fetch_add(1, std::memory_order_relaxed); }
  void backing_id_closed() { backing_ids_.fetch_sub(1, std::memory_order_relaxed); }

  Snapshot snapshot() const;
  // A short human-readable summary (one line per opcode seen).
  std::string to_text() const;

 private:
  struct Op {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> total_ns{0};
  };
  std::array<Op, opcode_slots> ops_{};
  std::array<std::atomic<uint64_t>, errno_slots> errnos_{};
  std::array<std::atomic<uint64_t>, latency_buckets> latency_{};
  std::atomic<uint64_t> bytes_read_{0};
  std::atomic<uint64_t> bytes_written_{0};
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> interrupts_{0};
  std::atomic<uint64_t> passthrough_opens_{0};
  std::atomic<uint64_t> passthrough_fallbacks_{0};
  std::atomic<uint64_t> backing_ids_{0};
  std::atomic<uint64_t> copy_ups_{0};
  std::atomic<uint64_t> copy_up_failures_{0};
  std::atomic<uint64_t> copy_up_bytes_{0};
  std::atomic<uint64_t> copy_up_ns_{0};
  std::array<std::atomic<uint64_t>, latency_buckets> copy_up_latency_{};
  std::atomic<uint64_t> promotions_{0};
  std::atomic<uint64_t> promotion_failures_{0};
};

// Kernel name of an opcode ("LOOKUP", "READDIRPLUS", ...) or "UNKNOWN".
const char* opcode_name(uint32_t opcode);

}  // namespace sandfs
