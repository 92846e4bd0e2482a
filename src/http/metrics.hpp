// Pieces of the admin API's Prometheus text (/metrics, text format 0.0.4) that stand alone, so
// they can be tested without a server. Beast-free and json-free.
#pragma once

#include <span>
#include <string>

#include "core/stats.hpp"

namespace sandfs::http {

// One mount's series: its label set, already escaped (`mount="…",sandbox="…"`), and its stats.
struct MountSeries {
  std::string labels;
  const Stats::Snapshot* stats = nullptr;
};

// The backend-event metrics of every mount, each family once with its HELP and TYPE:
//   sandfs_mount_copy_ups_total               copy-ups done
//   sandfs_mount_copy_up_failures_total       copy-ups that failed
//   sandfs_mount_copy_up_bytes_total          data bytes copy-ups copied
//   sandfs_mount_copy_up_duration_seconds     histogram of the copy-ups done (le = 2^i us; only
//                                             for mounts that did one)
//   sandfs_mount_promotions_total             directories promoted (and _failures_total)
std::string copy_up_metrics(std::span<const MountSeries> mounts);

}  // namespace sandfs::http
