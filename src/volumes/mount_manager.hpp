// MountManager: turns a mount spec into a running backend on a transport, and keeps it running
// until it is removed.
//
// A mount attaches a source (a host directory, a named volume, or in-memory scratch space) to a
// sandbox id through a transport: a vhost-user-fs socket the manager creates (a VMM connects to
// it; it keeps accepting the next frontend after a disconnect), or a host mountpoint through
// /dev/fuse. Every mount has its own backend instance(s) and its own Stats; a named volume with a
// quota shares one passthrough::Quota across all its mounts and the host-side file API.
//
// ## Validation (before anything starts)
// * bind: an absolute host path that exists and is a directory.
// * named: mode existing (volume_not_found if missing), create (volume_already_exists if
//   present), ensure_exists (create if missing; if present, the requested kind must match, a
//   requested quota must equal the stored one, every requested label must be present with the
//   same value; else invalid_config naming the difference). Disk volumes → unsupported.
// * tmpfs: MemFs with size as its capacity; stat_virtualization/host_permissions → invalid_config.
// * disk → unsupported (not served yet).
// * stat_virtualization off + host_permissions mirror → invalid_config.
// * sandbox_id: 1..128 of [A-Za-z0-9._-].
//
// ## Threads
// create/remove are blocking (they start and stop servers); everything is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/passthrough/policy.hpp"
#include "core/filesystem.hpp"
#include "core/stats.hpp"
#include "volumes/error.hpp"
#include "volumes/volume.hpp"

namespace sandfs::io {
class IoThreads;
}

namespace sandfs::volumes {

class VolumeStore;

enum class SourceKind : uint8_t { bind, named, tmpfs, disk };
enum class NamedMode : uint8_t { existing, create, ensure_exists };
enum class TransportKind : uint8_t { vhost_user, fuse };
std::string_view to_string(SourceKind kind);
std::string_view to_string(NamedMode mode);      // "existing", "create", "ensure-exists"
std::string_view to_string(TransportKind kind);  // "vhost-user", "fuse"

struct MountSpec {
  std::string sandbox_id;
  std::string guest_path;  // informational (where the guest mounts it); may be empty

  SourceKind source = SourceKind::named;
  std::string bind_path;  // bind
  std::string volume;     // named
  NamedMode mode = NamedMode::existing;
  VolumeKind create_kind = VolumeKind::dir;    // named + create/ensure_exists
  std::optional<uint64_t> create_quota_bytes;  // named + create/ensure_exists
  Labels create_labels;                        // named + create/ensure_exists
  std::optional<uint64_t> size_bytes;          // tmpfs capacity
  std::optional<uint64_t> quota_bytes;         // bind: a cap for this mount

  bool readonly = false, noexec = false, nosuid = false, nodev = false;
  passthrough::StatVirtualization stat_virtualization = passthrough::StatVirtualization::strict;
  passthrough::HostPermissions host_permissions = passthrough::HostPermissions::private_;
  CachePolicy cache = CachePolicy::auto_;

  TransportKind transport = TransportKind::vhost_user;
  std::string socket_path;  // vhost-user: empty = <runtime_dir>/<mount id>.sock
  unsigned queues = 1;      // vhost-user request queues
  std::string mountpoint;   // fuse: an existing empty directory
};

struct MountInfo {
  std::string id;         // a UUID
  MountSpec spec;         // with defaults filled in (socket_path)
  std::string volume_id;  // named: the volume's id
  int64_t created_at_ms = 0;
  uint64_t connections = 0;  // vhost-user frontends connected so far
  bool connected = false;    // vhost-user: a frontend is connected now; fuse: mounted
};

struct MountStats {
  // Per-op counts, errors by errno, bytes, latency, in-flight, the backend's copy-ups.
  Stats::Snapshot requests;
  uint64_t connections = 0;
  uint64_t bad_chains = 0;  // vhost-user: malformed descriptor chains dropped
  std::optional<uint64_t> quota_limit_bytes;
  std::optional<uint64_t> quota_used_bytes;
};

class MountManager {
 public:
  // `threads` runs every mount's servers; vhost-user sockets default to runtime_dir.
  MountManager(VolumeStore& store, io::IoThreads& threads, std::string runtime_dir);
  ~MountManager();  // stops every mount

  Outcome<MountInfo> create(MountSpec spec);
  Outcome<MountInfo> get(std::string_view id) const;
  std::vector<MountInfo> list(std::string_view sandbox_id = {}) const;
  Outcome<MountStats> stats(std::string_view id) const;
  // Stops serving (unmounts a fuse mount, closes the socket and its connections).
  Outcome<Done> remove(std::string_view id);
  // Who uses a volume, for VolumeStore::remove ("mount <id> of sandbox <sb>") or nothing.
  std::optional<std::string> user_of(std::string_view volume_name) const;
  // Totals over all mounts, for /metrics: one entry per mount id.
  std::vector<std::pair<MountInfo, MountStats>> all_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandfs::volumes
