// PassthroughMount: a sandfsd PassthroughFs mount of a fresh host directory, for one test case;
// plus helpers to look at the host side: the ownership record's bytes, host modes and owners, and
// a fingerprint of a directory to prove that nothing outside the served root changed.
//
// Layout on the host (ext4 under /tmp, which supports user xattrs):
//   /tmp/sandfs-ptit-host-XXXXXX/root      served as the mount's root (--root)
//   /tmp/sandfs-ptit-host-XXXXXX/outside   a sibling the guest must never reach; holds a canary
// and the mountpoint /tmp/sandfs-ptit-mnt-XXXXXX. The host tree is removed after the unmount.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mount_fixture.hpp"

namespace sandfs::it {

// The record the backend keeps in an xattr of each host file: 20 bytes, version 1, three zero
// bytes, then uid, gid, st_mode and rdev as little-endian u32 (rdev in the kernel's "new" dev_t
// encoding, as FUSE_MKNOD carries it).
struct StatRecord {
  uint32_t version = 1;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t mode = 0;
  uint32_t rdev = 0;
};
inline constexpr size_t stat_record_size = 20;

// The xattr name the backend uses when --stat-xattr is not given.
std::string default_record_name();

// The 20 bytes of `r` (version as given, so a test can write a wrong one).
std::string encode_record(const StatRecord& r);
// Decodes exactly 20 bytes; REQUIREs the size and the zero padding.
StatRecord decode_record(std::string_view bytes);
// The kernel's new_encode_dev(), which is how FUSE carries st_rdev.
uint32_t fuse_encode_dev(dev_t dev);

// lgetxattr on a host path: the value, or none when the attribute is absent (ENODATA). Any
// other error fails the test.
std::optional<std::string> host_xattr(const std::string& path, const std::string& name);
void set_host_xattr(const std::string& path, const std::string& name, std::string_view value);

// A recursive fingerprint of a host directory: every entry's relative path, type, mode, owner,
// size, mtime, ctime, xattr names and (for files) content hash. Two equal fingerprints mean nothing
// was created, removed, written, renamed or chmod-ed in between.
std::string tree_fingerprint(const std::string& dir);

// The host tree: root/ (served) and outside/ (never to be touched through the mount).
class HostTree {
 public:
  // `owner`: chown root/ (not outside/) to this uid:gid, for a server that runs as that user.
  explicit HostTree(std::optional<std::pair<uid_t, gid_t>> owner = std::nullopt);
  ~HostTree();
  HostTree(const HostTree&) = delete;
  HostTree& operator=(const HostTree&) = delete;

  const std::string& base() const { return base_; }
  std::string root(std::string_view rel = {}) const;
  std::string outside(std::string_view rel = {}) const;

 private:
  std::string base_;
};

struct PassthroughSpec {
  std::vector<std::string> flags;     // after --root DIR
  std::vector<std::string> launcher;  // see MountSpec::launcher
  // The server's user (with `launcher` set to become it): owns root/ and the mountpoint.
  std::optional<std::pair<uid_t, gid_t>> server_user;
  // Called after the host tree exists and before the mount, to seed host files.
  std::function<void(const HostTree&)> seed;
};

class PassthroughMount {
 public:
  explicit PassthroughMount(std::vector<std::string> flags = {});
  explicit PassthroughMount(PassthroughSpec spec);

  // Through the mount.
  std::string path(std::string_view rel = {}) const { return fs_.path(rel); }
  const std::string& dir() const { return fs_.dir(); }
  // On the host, beneath the served root.
  std::string host(std::string_view rel = {}) const { return tree_.root(rel); }
  std::string outside(std::string_view rel = {}) const { return tree_.outside(rel); }
  const HostTree& tree() const { return tree_; }
  MountedFs& fs() { return fs_; }

  // The record of a host file under `name` (default: the backend's name); REQUIREs it to exist.
  StatRecord record(std::string_view rel, const std::string& name = default_record_name()) const;
  bool has_record(std::string_view rel, const std::string& name = default_record_name()) const;

  void unmount() { fs_.unmount(); }

 private:
  HostTree tree_;  // first: made before the mount, removed after it
  MountedFs fs_;
};

}  // namespace sandfs::it
