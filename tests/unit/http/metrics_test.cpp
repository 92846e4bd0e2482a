// The copy-up families of /metrics (src/http/metrics.hpp): every mount's counters, and a
// cumulative histogram for the mounts that copied something up.
#include "http/metrics.hpp"

#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

using namespace sandfs;
using namespace sandfs::http;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (l == line) return true;
  return false;
}

}  // namespace

TEST_CASE("copy-up metrics: counters per mount, histogram where there were copy-ups",
          "[http][metrics]") {
  Stats::Snapshot busy;
  busy.copy_ups = 3;
  busy.copy_up_failures = 1;
  busy.copy_up_bytes = 3145728;
  busy.copy_up_total_ns = 2'500'000'000;
  busy.copy_up_us_log2[0] = 1;   // < 1 us
  busy.copy_up_us_log2[3] = 1;   // < 8 us
  busy.copy_up_us_log2[31] = 1;  // the slowest bucket
  busy.promotions = 2;
  Stats::Snapshot idle;
  const std::vector<MountSeries> mounts = {{"mount=\"m1\",sandbox=\"s\"", &busy},
                                           {"mount=\"m2\",sandbox=\"\"", &idle}};
  const std::string text = copy_up_metrics(mounts);
  INFO(text);
  CHECK(has_line(text, "# TYPE sandfs_mount_copy_ups_total counter"));
  CHECK(has_line(text, "sandfs_mount_copy_ups_total{mount=\"m1\",sandbox=\"s\"} 3"));
  CHECK(has_line(text, "sandfs_mount_copy_ups_total{mount=\"m2\",sandbox=\"\"} 0"));
  CHECK(has_line(text, "sandfs_mount_copy_up_failures_total{mount=\"m1\",sandbox=\"s\"} 1"));
  CHECK(has_line(text, "sandfs_mount_copy_up_bytes_total{mount=\"m1\",sandbox=\"s\"} 3145728"));
  CHECK(has_line(text, "sandfs_mount_promotions_total{mount=\"m1\",sandbox=\"s\"} 2"));
  CHECK(has_line(text, "sandfs_mount_promotion_failures_total{mount=\"m1\",sandbox=\"s\"} 0"));

  const std::string h = "sandfs_mount_copy_up_duration_seconds";
  CHECK(has_line(text, "# TYPE " + h + " histogram"));
  CHECK(has_line(text, h + "_bucket{mount=\"m1\",sandbox=\"s\",le=\"1e-06\"} 1"));
  CHECK(has_line(text, h + "_bucket{mount=\"m1\",sandbox=\"s\",le=\"4e-06\"} 1"));
  CHECK(has_line(text, h + "_bucket{mount=\"m1\",sandbox=\"s\",le=\"8e-06\"} 2"));
  CHECK(has_line(text, h + "_bucket{mount=\"m1\",sandbox=\"s\",le=\"+Inf\"} 3"));
  CHECK(has_line(text, h + "_sum{mount=\"m1\",sandbox=\"s\"} 2.5"));
  CHECK(has_line(text, h + "_count{mount=\"m1\",sandbox=\"s\"} 3"));
  // No histogram series for a mount without copy-ups.
  CHECK(text.find(h + "_count{mount=\"m2\"") == std::string::npos);
  // Each family's HELP comes once.
  size_t helps = 0;
  for (size_t at = text.find("# HELP " + h); at != std::string::npos;
       at = text.find("# HELP " + h, at + 1))
    ++helps;
  CHECK(helps == 1);
}
