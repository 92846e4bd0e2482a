#include "http/metrics.hpp"

#include <charconv>
#include <sstream>

namespace sandfs::http {

namespace {

// Shortest text that reads back as `v` ("1e-06", "0.001").
std::string number(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, end) : std::string("0");
}

}  // namespace

std::string copy_up_metrics(std::span<const MountSeries> mounts) {
  std::ostringstream out;
  const auto counter = [&](const char* name, const char* help, auto value) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n";
    for (const MountSeries& m : mounts) {
      if (m.stats) out << name << "{" << m.labels << "} " << value(*m.stats) << "\n";
    }
  };
  counter("sandfs_mount_copy_ups_total", "Copy-ups done (DualFs: a lower file copied up).",
          [](const Stats::Snapshot& s) { return s.copy_ups; });
  counter("sandfs_mount_copy_up_failures_total", "Copy-ups that failed.",
          [](const Stats::Snapshot& s) { return s.copy_up_failures; });
  counter("sandfs_mount_copy_up_bytes_total", "Data bytes copied by copy-ups.",
          [](const Stats::Snapshot& s) { return s.copy_up_bytes; });
  counter("sandfs_mount_promotions_total",
          "Directories promoted (created on the upper side to hold a copy-up).",
          [](const Stats::Snapshot& s) { return s.promotions; });
  counter("sandfs_mount_promotion_failures_total", "Directory promotions that failed.",
          [](const Stats::Snapshot& s) { return s.promotion_failures; });

  const char* h = "sandfs_mount_copy_up_duration_seconds";
  out << "# HELP " << h << " How long copy-ups took (their ancestors' promotions included).\n"
      << "# TYPE " << h << " histogram\n";
  for (const MountSeries& m : mounts) {
    if (!m.stats || m.stats->copy_ups == 0) continue;
    const Stats::Snapshot& s = *m.stats;
    // Bucket i counts copy-ups under 2^i us; the last one everything slower (only +Inf).
    uint64_t seen = 0;
    for (size_t i = 0; i + 1 < s.copy_up_us_log2.size(); ++i) {
      seen += s.copy_up_us_log2[i];
      out << h << "_bucket{" << m.labels << ",le=\""
          << number(static_cast<double>(uint64_t{1} << i) / 1e6) << "\"} " << seen << "\n";
    }
    seen += s.copy_up_us_log2.back();
    out << h << "_bucket{" << m.labels << ",le=\"+Inf\"} " << seen << "\n";
    out << h << "_sum{" << m.labels << "} " << number(static_cast<double>(s.copy_up_total_ns) / 1e9)
        << "\n";
    out << h << "_count{" << m.labels << "} " << s.copy_ups << "\n";
  }
  return out.str();
}

}  // namespace sandfs::http
