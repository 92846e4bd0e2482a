// The checks a mount spec passes before the mount manager starts anything (the list in
// mount_manager.hpp "Validation"), each failure with a stable code and a message that names the
// field and says what would be accepted.
//
// Two steps, because the second needs the catalog:
//   validate_mount_spec   the spec on its own, plus the host paths it names (a bind directory,
//                         a fuse mountpoint): exists, is a directory, is empty.
//   check_ensure_exists   a named mount in ensure-exists mode against the volume that exists.
#pragma once

#include <cstddef>
#include <string_view>

#include "volumes/error.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume.hpp"

namespace sandfs::volumes {

inline constexpr size_t max_sandbox_id_length = 128;
// Request queues a vhost-user mount may ask for (as `sandfsd vhost-user --queues`).
inline constexpr unsigned max_mount_queues = 64;

// 1..128 of [A-Za-z0-9._-].
bool valid_sandbox_id(std::string_view id);

// Everything that can be checked without the catalog. Blocking (stats host paths).
Outcome<Done> validate_mount_spec(const MountSpec& spec);

// ensure-exists found `volume`: the requested kind must equal it, a requested quota must equal
// the stored one, every requested label must be stored with the same value (extra stored labels
// are fine). invalid_config naming the first difference.
Outcome<Done> check_ensure_exists(const MountSpec& spec, const VolumeInfo& volume);

}  // namespace sandfs::volumes
