#include "core/stats.hpp"

#include <bit>
#include <sstream>

#include "core/protocol/fuse_kernel.hpp"

namespace sandfs {

namespace {
constexpr auto relaxed = std::memory_order_relaxed;

size_t latency_bucket(std::chrono::nanoseconds latency) {
  const auto us = static_cast<uint64_t>(std::max<int64_t>(latency.count() / 1000, 0));
  // bucket i holds [2^(i-1), 2^i) us; bucket 0 holds < 1 us.
  const size_t b = static_cast<size_t>(std::bit_width(us));
  return std::min(b, Stats::latency_buckets - 1);
}

uint64_t percentile(const std::array<uint64_t, Stats::latency_buckets>& hist, uint64_t total,
                    double q) {
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(static_cast<double>(total) * q + 0.5);
  uint64_t seen = 0;
  for (size_t i = 0; i < hist.size(); ++i) {
    seen += hist[i];
    if (seen >= rank && hist[i] != 0) return uint64_t{1} << i;
  }
  return uint64_t{1} << (hist.size() - 1);
}
}  // namespace

int Stats::before(const RequestInfo& op) {
  (void)op;
  in_flight_.fetch_add(1, relaxed);
  return 0;
}

void Stats::after(const RequestOutcome& r) {
  using namespace fuse;
  const uint32_t opcode = r.opcode;
  const int error = r.error;
  const std::chrono::nanoseconds latency = r.duration;
  in_flight_.fetch_sub(1, relaxed);
  if (r.bytes != 0) {
    if (opcode == FUSE_READ) {
      bytes_read_.fetch_add(r.bytes, relaxed);
    } else {
      bytes_written_.fetch_add(r.bytes, relaxed);
    }
  }
  if (opcode == FUSE_INTERRUPT && error == 0) interrupts_.fetch_add(1, relaxed);
  Op& op = ops_[opcode < opcode_slots ? opcode : 0];
  op.count.fetch_add(1, relaxed);
  op.total_ns.fetch_add(static_cast<uint64_t>(std::max<int64_t>(latency.count(), 0)), relaxed);
  if (error != 0) {
    op.errors.fetch_add(1, relaxed);
    errnos_[error > 0 && static_cast<size_t>(error) < errno_slots ? error : 0].fetch_add(1,
                                                                                         relaxed);
  }
  latency_[latency_bucket(latency)].fetch_add(1, relaxed);
}

void Stats::event(const BackendEvent& e) {
  switch (e.kind) {
    case BackendEvent::Kind::copy_up:
      if (e.error != 0) {
        copy_up_failures_.fetch_add(1, relaxed);
        break;
      }
      copy_ups_.fetch_add(1, relaxed);
      copy_up_bytes_.fetch_add(e.bytes, relaxed);
      copy_up_ns_.fetch_add(static_cast<uint64_t>(std::max<int64_t>(e.duration.count(), 0)),
                            relaxed);
      copy_up_latency_[latency_bucket(e.duration)].fetch_add(1, relaxed);
      break;
    case BackendEvent::Kind::promotion:
      (e.error != 0 ? promotion_failures_ : promotions_).fetch_add(1, relaxed);
      break;
  }
}

Stats::Snapshot Stats::snapshot() const {
  Snapshot s;
  for (size_t i = 0; i < opcode_slots; ++i) {
    const uint64_t count = ops_[i].count.load(relaxed);
    if (count == 0) continue;
    s.ops.push_back(OpSnapshot{static_cast<uint32_t>(i), count, ops_[i].errors.load(relaxed),
                               ops_[i].total_ns.load(relaxed)});
  }
  for (size_t i = 0; i < errno_slots; ++i) {
    const uint64_t n = errnos_[i].load(relaxed);
    if (n != 0) s.errors_by_errno.emplace_back(static_cast<int>(i), n);
  }
  s.bytes_read = bytes_read_.load(relaxed);
  s.bytes_written = bytes_written_.load(relaxed);
  s.in_flight = in_flight_.load(relaxed);
  s.malformed = malformed_.load(relaxed);
  s.interrupts = interrupts_.load(relaxed);
  s.passthrough_opens = passthrough_opens_.load(relaxed);
  s.passthrough_fallbacks = passthrough_fallbacks_.load(relaxed);
  s.backing_ids = backing_ids_.load(relaxed);
  s.copy_ups = copy_ups_.load(relaxed);
  s.copy_up_failures = copy_up_failures_.load(relaxed);
  s.copy_up_bytes = copy_up_bytes_.load(relaxed);
  s.copy_up_total_ns = copy_up_ns_.load(relaxed);
  for (size_t i = 0; i < latency_buckets; ++i)
    s.copy_up_us_log2[i] = copy_up_latency_[i].load(relaxed);
  s.promotions = promotions_.load(relaxed);
  s.promotion_failures = promotion_failures_.load(relaxed);
  uint64_t total = 0;
  for (size_t i = 0; i < latency_buckets; ++i) {
    s.latency_us_log2[i] = latency_[i].load(relaxed);
    total += s.latency_us_log2[i];
    if (s.latency_us_log2[i] != 0) s.max_bucket_us = uint64_t{1} << i;
  }
  s.p50_us = percentile(s.latency_us_log2, total, 0.50);
  s.p90_us = percentile(s.latency_us_log2, total, 0.90);
  s.p99_us = percentile(s.latency_us_log2, total, 0.99);
  return s;
}

std::string Stats::to_text() const {
  const Snapshot s = snapshot();
  std::ostringstream out;
  out << "requests in flight " << s.in_flight << ", read " << s.bytes_read << " B, written "
      << s.bytes_written << " B, malformed " << s.malformed << ", latency p50<" << s.p50_us
      << "us p99<" << s.p99_us << "us\n";
  if (s.passthrough_opens != 0 || s.passthrough_fallbacks != 0) {
    out << "  passthrough opens " << s.passthrough_opens << ", fallbacks "
        << s.passthrough_fallbacks << ", backing ids open " << s.backing_ids << "\n";
  }
  if (s.copy_ups != 0 || s.copy_up_failures != 0 || s.promotions != 0 ||
      s.promotion_failures != 0) {
    out << "  copy-ups " << s.copy_ups << " (" << s.copy_up_failures << " failed, "
        << s.copy_up_bytes << " B, mean "
        << (s.copy_ups ? s.copy_up_total_ns / s.copy_ups / 1000 : 0) << " us), promotions "
        << s.promotions << " (" << s.promotion_failures << " failed)\n";
  }
  for (const auto& op : s.ops) {
    out << "  " << opcode_name(op.opcode) << ": " << op.count << " (" << op.errors
        << " errors, mean " << (op.count ? op.total_ns / op.count / 1000 : 0) << " us)\n";
  }
  return out.str();
}

const char* opcode_name(uint32_t opcode) {
  using namespace fuse;
  switch (opcode) {
#define SANDFS_OPCODE(name) \
  case FUSE_##name:         \
    return #name;
    SANDFS_OPCODE(LOOKUP)
    SANDFS_OPCODE(FORGET)
    SANDFS_OPCODE(GETATTR)
    SANDFS_OPCODE(SETATTR)
    SANDFS_OPCODE(READLINK)
    SANDFS_OPCODE(SYMLINK)
    SANDFS_OPCODE(MKNOD)
    SANDFS_OPCODE(MKDIR)
    SANDFS_OPCODE(UNLINK)
    SANDFS_OPCODE(RMDIR)
    SANDFS_OPCODE(RENAME)
    SANDFS_OPCODE(LINK)
    SANDFS_OPCODE(OPEN)
    SANDFS_OPCODE(READ)
    SANDFS_OPCODE(WRITE)
    SANDFS_OPCODE(STATFS)
    SANDFS_OPCODE(RELEASE)
    SANDFS_OPCODE(FSYNC)
    SANDFS_OPCODE(SETXATTR)
    SANDFS_OPCODE(GETXATTR)
    SANDFS_OPCODE(LISTXATTR)
    SANDFS_OPCODE(REMOVEXATTR)
    SANDFS_OPCODE(FLUSH)
    SANDFS_OPCODE(INIT)
    SANDFS_OPCODE(OPENDIR)
    SANDFS_OPCODE(READDIR)
    SANDFS_OPCODE(RELEASEDIR)
    SANDFS_OPCODE(FSYNCDIR)
    SANDFS_OPCODE(GETLK)
    SANDFS_OPCODE(SETLK)
    SANDFS_OPCODE(SETLKW)
    SANDFS_OPCODE(ACCESS)
    SANDFS_OPCODE(CREATE)
    SANDFS_OPCODE(INTERRUPT)
    SANDFS_OPCODE(BMAP)
    SANDFS_OPCODE(DESTROY)
    SANDFS_OPCODE(IOCTL)
    SANDFS_OPCODE(POLL)
    SANDFS_OPCODE(NOTIFY_REPLY)
    SANDFS_OPCODE(BATCH_FORGET)
    SANDFS_OPCODE(FALLOCATE)
    SANDFS_OPCODE(READDIRPLUS)
    SANDFS_OPCODE(RENAME2)
    SANDFS_OPCODE(LSEEK)
    SANDFS_OPCODE(COPY_FILE_RANGE)
    SANDFS_OPCODE(SETUPMAPPING)
    SANDFS_OPCODE(REMOVEMAPPING)
    SANDFS_OPCODE(SYNCFS)
    SANDFS_OPCODE(TMPFILE)
    SANDFS_OPCODE(STATX)
    SANDFS_OPCODE(COPY_FILE_RANGE_64)
#undef SANDFS_OPCODE
    default:
      return "UNKNOWN";
  }
}

}  // namespace sandfs
