// What a volume is, as the service and its callers see it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sandfs::volumes {

enum class VolumeKind : uint8_t { dir, disk };
std::string_view to_string(VolumeKind kind);  // "dir", "disk"

using Labels = std::map<std::string, std::string>;

struct VolumeInfo {
  std::string id;    // a UUID (v4, lowercase), fixed at creation, never reused
  std::string name;  // ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
  VolumeKind kind = VolumeKind::dir;
  std::optional<uint64_t> quota_bytes;     // dir: a true cap on the bytes stored; none = unlimited
  std::optional<uint64_t> capacity_bytes;  // disk: the image's size
  std::string disk_format;                 // disk: "raw"
  std::string disk_fstype;                 // disk: "ext4"
  Labels labels;
  int64_t created_at_ms = 0;  // Unix time, milliseconds
  int64_t updated_at_ms = 0;
  uint64_t used_bytes = 0;  // dir: bytes stored (each inode once); disk: blocks allocated
  std::string path;         // host directory of the volume (dir: its root; disk: holds disk.raw)
};

// Whether `name` is a valid volume name.
bool valid_volume_name(std::string_view name);

}  // namespace sandfs::volumes
