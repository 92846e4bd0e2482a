// MemFs: a filesystem that lives entirely in memory.
//
// Sparse paged file data (pages.hpp), capacity and inode limits enforced all-or-nothing
// (budget.hpp), per-node locking with sharded tables (node.hpp states the lock order), stable
// readdir cookies (dir_entries.hpp). Everything in filesystem.hpp is implemented; the choices that
// interface leaves open are written down here.
//
// ## Cache policy (default: always)
//            open flags (files / dirs)            entry and attr timeouts
//   never    FOPEN_DIRECT_IO / FOPEN_DIRECT_IO     0
//   auto     none / none                           1 s
//   always   FOPEN_KEEP_CACHE / FOPEN_CACHE_DIR    1 hour
// MemFsConfig::entry_timeout / attr_timeout override the timeouts. A lookup of a missing name
// answers a negative entry (ino 0) when the entry timeout is non-zero, so the kernel caches the
// miss, and ENOENT otherwise. Symlink caching is offered unless the policy is never.
//
// ## Semantics worth knowing
// * ENOSPC never leaves half-done state: every operation reserves all it needs first. A write
//   that only partly fits writes the part that fits and returns the short count (POSIX, as
//   tmpfs), failing with ENOSPC only when not one byte fits; under a negotiated writeback cache it
//   is all-or-nothing, because the kernel drops a short count when it flushes pages. fallocate,
//   copy_file_range, xattrs and creations are all-or-nothing.
// * Xattrs in the system. namespace answer EOPNOTSUPP: without FUSE_POSIX_ACL the kernel hands
//   ACLs to us as plain xattrs, and a filesystem that cannot apply them must refuse them.
// * Capacity counts allocated 4 KiB file pages plus xattr names and values. Symlink targets,
//   names and directory entries are not charged (the inode limit bounds them). Truncating up is
//   free (the new range is a hole), like tmpfs. Statfs reports capacity and the inode limit;
//   without limits, 2^50 bytes and 2^32 inodes.
// * Reads never update atime (as if mounted noatime). Writes, truncation, fallocate that changes
//   the file, and copy_file_range update mtime and ctime of the file; namespace changes update the
//   parent directories' mtime and ctime.
// * Permissions are the kernel's job (virtio-fs and our FUSE mounts use default_permissions); only
//   access() checks them, using owner, group (primary gid only) and other bits, root bypassing
//   read/write always and execute when any x bit is set (always for directories).
// * Suid/sgid clearing (HANDLE_KILLPRIV_V2): on write when the kernel asks; on copy_file_range
//   for non-root callers (the request carries no flag); on open/create with O_TRUNC when asked;
//   on setattr with FATTR_KILL_SUIDGID (also together with FATTR_SIZE); on a chown (FATTR_UID or
//   FATTR_GID) of a regular file by a non-root caller. Sgid goes only together with group-exec,
//   since sgid without it marks mandatory locking, not privilege. No security.capability is
//   treated specially, so there is nothing else to kill.
// * Data operations on a handle of the wrong type: a directory answers EISDIR; for read, write,
//   lseek and copy_file_range any other non-regular file answers EINVAL; fallocate follows Linux:
//   a fifo ESPIPE, other non-regular files ENODEV.
// * create() on an existing name opens it unless O_EXCL (EEXIST); an existing directory answers
//   EISDIR and an existing non-regular file EEXIST (the kernel only sends create for names it
//   believed missing, so this is a race with another creator).
// * copy_file_range copies like memmove, so overlapping ranges of one file are copied correctly
//   (the Linux VFS rejects those before they reach us, but a guest may send anything).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "backends/memfs/budget.hpp"
#include "backends/memfs/node.hpp"
#include "backends/memfs/tables.hpp"
#include "core/filesystem.hpp"

namespace sandfs::memfs {

// What "no limit" reports in statfs.
inline constexpr uint64_t unlimited_capacity = uint64_t{1} << 50;
inline constexpr uint64_t unlimited_inodes = uint64_t{1} << 32;

// Largest xattr value and name, as Linux (XATTR_SIZE_MAX, XATTR_NAME_MAX).
inline constexpr size_t xattr_value_max = 64 * 1024;
inline constexpr size_t xattr_name_max = 255;

struct MemFsConfig {
  std::optional<uint64_t> capacity_bytes;  // file pages + xattrs; none: unlimited
  std::optional<uint64_t> max_inodes;      // counts the root; none: unlimited
  CachePolicy cache = CachePolicy::always;
  bool writeback = false;                                 // offer FUSE_WRITEBACK_CACHE
  std::optional<std::chrono::nanoseconds> entry_timeout;  // override the policy's
  std::optional<std::chrono::nanoseconds> attr_timeout;
  uint32_t root_uid = 0;
  uint32_t root_gid = 0;
  uint32_t root_mode = 0755;  // permission bits of the root directory
};

class MemFs final : public Filesystem {
 public:
  explicit MemFs(MemFsConfig config = {});
  ~MemFs() override;
  MemFs(const MemFs&) = delete;
  MemFs& operator=(const MemFs&) = delete;

  const MemFsConfig& config() const { return config_; }
  // Bytes charged to the capacity (allocated pages and xattrs) and live inodes (with the root).
  uint64_t used_bytes() const { return bytes_.used(); }
  uint64_t used_inodes() const { return inodes_.used(); }

  Capabilities capabilities() const override;
  Task<Status> init(const SessionParams& params) override;
  Task<void> destroy() override;

  Task<Result<Entry>> lookup(const RequestContext& ctx, InodeId parent,
                             std::string_view name) override;
  void forget(InodeId ino, uint64_t nlookup) override;

  Task<Result<AttrReply>> getattr(const RequestContext& ctx, InodeId ino,
                                  std::optional<HandleId> fh) override;
  Task<Result<AttrReply>> setattr(const RequestContext& ctx, InodeId ino,
                                  const SetAttrIn& in) override;
  Task<Result<std::string>> readlink(const RequestContext& ctx, InodeId ino) override;

  Task<Result<Entry>> mknod(const RequestContext& ctx, InodeId parent, std::string_view name,
                            uint32_t mode, uint32_t rdev, uint32_t umask) override;
  Task<Result<Entry>> mkdir(const RequestContext& ctx, InodeId parent, std::string_view name,
                            uint32_t mode, uint32_t umask) override;
  Task<Result<Entry>> symlink(const RequestContext& ctx, InodeId parent, std::string_view name,
                              std::string_view target) override;
  Task<Result<Entry>> link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                           std::string_view new_name) override;
  Task<Status> unlink(const RequestContext& ctx, InodeId parent, std::string_view name) override;
  Task<Status> rmdir(const RequestContext& ctx, InodeId parent, std::string_view name) override;
  Task<Status> rename(const RequestContext& ctx, InodeId parent, std::string_view name,
                      InodeId new_parent, std::string_view new_name, uint32_t flags) override;

  Task<Result<OpenReply>> open(const RequestContext& ctx, InodeId ino, uint32_t flags,
                               bool kill_suidgid) override;
  Task<Result<CreateReply>> create(const RequestContext& ctx, InodeId parent, std::string_view name,
                                   uint32_t mode, uint32_t flags, uint32_t umask,
                                   bool kill_suidgid) override;
  Task<Result<size_t>> read(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                            uint32_t size, const IoVecs& dst) override;
  Task<Result<size_t>> write(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                             const IoVecs& src, bool kill_suidgid) override;
  Task<Status> flush(const RequestContext& ctx, InodeId ino, HandleId fh,
                     uint64_t lock_owner) override;
  Task<Status> release(const RequestContext& ctx, InodeId ino, HandleId fh,
                       uint32_t flags) override;
  Task<Status> fsync(const RequestContext& ctx, InodeId ino, HandleId fh, bool datasync) override;

  Task<Result<OpenReply>> opendir(const RequestContext& ctx, InodeId ino, uint32_t flags) override;
  Task<Status> readdir(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                       DirSink& sink) override;
  Task<Status> readdirplus(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                           DirPlusSink& sink) override;
  Task<Status> releasedir(const RequestContext& ctx, InodeId ino, HandleId fh) override;
  Task<Status> fsyncdir(const RequestContext& ctx, InodeId ino, HandleId fh,
                        bool datasync) override;

  Task<Result<StatFs>> statfs(const RequestContext& ctx, InodeId ino) override;

  Task<Status> setxattr(const RequestContext& ctx, InodeId ino, std::string_view name,
                        std::span<const char> value, uint32_t flags) override;
  Task<Result<XattrReply>> getxattr(const RequestContext& ctx, InodeId ino, std::string_view name,
                                    uint32_t size) override;
  Task<Result<XattrReply>> listxattr(const RequestContext& ctx, InodeId ino,
                                     uint32_t size) override;
  Task<Status> removexattr(const RequestContext& ctx, InodeId ino, std::string_view name) override;

  Task<Status> access(const RequestContext& ctx, InodeId ino, uint32_t mask) override;
  Task<Status> fallocate(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                         uint64_t length, uint32_t mode) override;
  Task<Result<uint64_t>> lseek(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                               uint32_t whence) override;
  Task<Result<size_t>> copy_file_range(const RequestContext& ctx, InodeId ino_in, HandleId fh_in,
                                       uint64_t off_in, InodeId ino_out, HandleId fh_out,
                                       uint64_t off_out, uint64_t len, uint64_t flags) override;

 private:
  // ---- memfs.cpp: shared helpers ----
  std::shared_ptr<Node> find_node(InodeId ino) const { return nodes_.find(ino); }
  // The caller holds n.mu (shared is enough).
  Attr attr_of(const Node& n) const;
  Entry entry_of(const Node& n) const;
  AttrReply attr_reply_of(const Node& n) const;
  // The open handle `fh`, if it exists, belongs to `ino` and is of the right kind; else EBADF.
  Result<std::shared_ptr<Handle>> find_handle(HandleId fh, InodeId ino, bool dir) const;
  uint32_t open_reply_flags(bool dir) const;
  // Frees the node if nothing references it any more. The caller holds n.mu exclusively.
  void evict_if_unused(Node& n);
  // forget() for a node in hand: drops `count` lookup references, evicting if unused.
  void drop_lookup_refs(Node& n, uint64_t count);
  // Sets the size of a regular file, giving freed pages back. The caller holds n.mu exclusively.
  void truncate_locked(Node& n, uint64_t size);
  void release_pages(uint64_t count) { bytes_.release(count * page_size); }

  // ---- create.cpp ----
  // Creates `name` in `parent` (held exclusively by the caller, already checked to be a live
  // directory without that name). Returns the new node, linked and with one lookup reference.
  Result<std::shared_ptr<Node>> make_child_locked(const RequestContext& ctx, Node& parent,
                                                  std::string_view name, uint32_t mode,
                                                  uint32_t rdev, std::string_view target);
  Result<Entry> make_entry(const RequestContext& ctx, InodeId parent, std::string_view name,
                           uint32_t mode, uint32_t rdev, std::string_view target);

  // ---- data.cpp ----
  // Opens `n` (held exclusively by the caller) as a file handle.
  Result<OpenReply> open_locked(const std::shared_ptr<Node>& n, uint32_t flags, bool kill_suidgid);

  // ---- rename.cpp ----
  // The caller holds rename_mu_ when p1 and p2 differ.
  Status rename_nodes(Node& p1, std::string_view name, Node& p2, std::string_view new_name,
                      uint32_t flags);

  MemFsConfig config_;
  std::chrono::nanoseconds entry_timeout_{0};
  std::chrono::nanoseconds attr_timeout_{0};
  std::atomic<bool> writeback_{false};

  Budget bytes_;
  Budget inodes_;
  InodeTable nodes_;
  HandleTable handles_;
  std::atomic<InodeId> next_ino_{2};
  std::atomic<HandleId> next_fh_{1};
  std::mutex rename_mu_;
};

std::shared_ptr<MemFs> make_memfs(MemFsConfig config = {});

// Name checks applied to every name a MemFs operation receives: empty EINVAL, "." / ".." / '/'
// EPERM, NUL EINVAL, longer than 255 bytes ENAMETOOLONG. Returns 0 when the name is fine.
int check_name(std::string_view name);

// Clears suid, and sgid when group-exec is set (sgid without it marks mandatory locking).
uint32_t kill_suidgid_bits(uint32_t mode);

}  // namespace sandfs::memfs
