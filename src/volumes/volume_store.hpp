// VolumeStore: the named volumes under a data directory, with their SQLite catalog.
//
// ## Layout (under data_dir)
//   catalog.db (+ -wal, -shm)   the catalog: SQLite, WAL, versioned schema migrations
//   volumes/<name>/             a dir volume's root, or a disk volume's folder holding disk.raw
//   volumes/.staging/<id>/      a volume being created; renamed onto volumes/<name> when ready
//   volumes/.trash/<id>/        a volume being removed; deleted after its row is gone
//
// ## Crash safety
// Create: insert the row as `creating` (one transaction; the UNIQUE name makes concurrent creates
// of one name give exactly one winner) → build in .staging → rename into place → mark `ready`.
// Remove: mark `removing` → rename the folder into .trash → delete the row → delete the folder.
// open() repairs whatever a crash left: `creating` rows and their staging folders are dropped,
// `removing` rows are finished, folders under volumes/ without a row and everything in .staging
// and .trash are deleted. So no orphan ever blocks a name, and a create or remove is either
// complete or absent.
//
// ## Threads
// Every method is blocking (SQLite, mkfs.ext4, tree walks) and thread-safe; callers on an event
// loop run them through a blocking pool (src/http does).
//
// ## used_bytes
// Dir: the counted shared quota's used() when there is one; otherwise a walk of the tree, reused
// for up to 2 s per volume, so a figure may be that much behind recent writes. Disk: the
// image's allocated blocks, always current.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "volumes/error.hpp"
#include "volumes/volume.hpp"

namespace sandfs::passthrough {
class Quota;
}

namespace sandfs::volumes {

struct CreateVolume {
  std::string name;
  VolumeKind kind = VolumeKind::dir;
  std::optional<uint64_t> quota_bytes;  // dir only
  std::optional<uint64_t> size_bytes;   // disk only, required (rounded up to whole MiB)
  Labels labels;
};

struct UpdateVolume {
  // Absent: unchanged. Present and empty: remove the quota. Present with a value: set it.
  std::optional<std::optional<uint64_t>> quota_bytes;
  std::optional<Labels> labels;  // replaces all labels
};

class VolumeStore {
 public:
  // Opens (creating if needed) data_dir, its catalog and layout, and repairs what a crash left.
  static Outcome<std::unique_ptr<VolumeStore>> open(const std::filesystem::path& data_dir);
  ~VolumeStore();

  Outcome<VolumeInfo> create(const CreateVolume& request);
  Outcome<VolumeInfo> get(std::string_view name);
  // get() without measuring used_bytes (left 0): for callers that only need to reach the
  // volume (its id, kind and path), such as every host-side file operation, since measuring a
  // volume without a quota walks its tree.
  Outcome<VolumeInfo> locate(std::string_view name);
  Outcome<VolumeInfo> get_by_id(std::string_view id);
  Outcome<VolumeInfo> locate_by_id(std::string_view id);  // get_by_id() without measuring
  // Newest first. Only volumes carrying every label in `selector` (key and value equal).
  Outcome<std::vector<VolumeInfo>> list(const Labels& selector = {});
  Outcome<VolumeInfo> update(std::string_view name, const UpdateVolume& request);
  // volume_in_use when the in-use check names a user of the volume.
  Outcome<Done> remove(std::string_view name);

  // Called by remove(): returns a description of who uses the volume ("mount 3f2a… of sandbox
  // sb1") or nothing. Set by the mount manager.
  // Drops the briefly cached used_bytes of a dir volume (reused for 2 s, since measuring walks
  // the tree) after its files were changed on the host side, so the next get() measures again.
  // Mounts need not call it: a volume with a quota answers from its live counter.
  void contents_changed(std::string_view name);

  void set_in_use_check(std::function<std::optional<std::string>(std::string_view name)> check);

  // The one quota of a dir volume, shared by every mount of the volume and the host-side file
  // operations, so the cap holds for all of them together. A volume without a quota gets one too,
  // with no limit (UINT64_MAX): it counts what is stored (a live used_bytes), and a quota set
  // later by update() caps the mounts already holding it. Null for a disk or unknown volume.
  // The first user to find it not ready() counts what is stored; the store keeps the object
  // until the volume is removed, so that count is made once. update() changes its limit in place.
  std::shared_ptr<passthrough::Quota> quota(std::string_view name);

  const std::filesystem::path& data_dir() const;

 private:
  struct Impl;
  explicit VolumeStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandfs::volumes
