// PassthroughFs: serves one host directory, confined to it, without needing root.
//
// The guest sees the host's files, sizes, times and data; what it sees as owner, group, mode,
// file type and device number comes from an ownership record kept in an xattr of each host object
// (ownership_record.hpp, policy.hpp), so guest root can chown, chmod and mknod devices while the
// server runs as an ordinary user and the host tree stays 0600/0700. Every host syscall goes
// through io::Ring (io_uring where it has the operation, the blocking pool otherwise).
//
// Files, one concern each:
//   confinement   names, open-beneath, reopen through /proc/self/fd, opening the root
//   inode_store   ids, generations, lookup counts, aliases, the bounded O_PATH fd cache, re-walks
//   ownership_record, policy, quota, handles, host_calls, host_fd
//   lookup, create, remove, data, metadata, xattr, dir   the operations
//   config        make_passthrough(): start-up checks; quota_walk: the mount-time size count
//
// ## Cache policy (default auto: the host directory may change under us)
//            open flags (files / dirs)            entry and attr timeouts
//   never    FOPEN_DIRECT_IO / FOPEN_DIRECT_IO     0
//   auto     none / none                           1 s
//   always   FOPEN_KEEP_CACHE / FOPEN_CACHE_DIR    1 hour
// PassthroughConfig::entry_timeout / attr_timeout override the timeouts. A lookup of a missing
// name answers a negative entry (ino 0) when the entry timeout is non-zero, else ENOENT.
//
// ## What each request costs (hot paths)
// * getattr: one statx on the cached O_PATH fd; the record comes from the entry's cache, which
//   is trusted while the host ctime is unchanged (inode_store.hpp "Records"), else one xattr read.
// * lookup of a name already known: one statx by name. Of a new name: openat2 + statx + one
//   xattr read (a blocking-pool job).
// * readdir: one blocking job per 32 KiB of getdents64, which also reads the record of each
//   regular host file whose entry is not cached (to report the guest's d_type: a FIFO or a
//   strict-mode symlink is a regular host file). readdirplus: per entry as lookup, the lookups
//   of a batch of 32 run concurrently and their record reads share one job.
// * read/write: preadv/pwritev between the host file and the transport's buffers, no copy. With
//   kernel passthrough agreed, open/create hand the kernel the handle's host fd instead, except
//   under a quota and for setuid/setgid files, whose writes we must see (passthrough.cpp).
// io_uring always hands statx to a worker thread (~12 us here) and a run_blocking job costs
// ~40 us of wake-ups, against 0.2 us for the syscall itself: the design counts hops, not calls.
// * No global lock: sharded tables, per-entry mutexes, none held across a co_await.
//
// ## Semantics worth knowing
// * Guest inode ids are derived from host identity (inode_store.hpp); st_ino and every d_ino are
//   the same ids. Entry::generation changes when a host inode number is reused for a new object.
// * Directory offsets are the host's getdents64 d_off cookies, which ext4, xfs, btrfs and tmpfs
//   keep valid across concurrent changes; a handle resumes at any offset it gave out by seeking
//   there. Entries are not snapshotted: a listing sees concurrent changes or not, as POSIX allows.
// * Errors are the host's errnos. A corrupt record is EIO (fail closed).
// * Read-only: every mutating operation is EROFS (name checks first); nothing is written to the
//   host, not even at mount.
// * HANDLE_KILLPRIV_V2: on write and truncate when the kernel asks, on open(O_TRUNC) when asked,
//   and on every chown of a regular file, the record loses setuid (and setgid when group-exec is
//   set). On the host, setuid and security.capability are cleared by the host kernel itself when
//   an unprivileged server writes or truncates; a server running as root clears them explicitly.
// * New objects take the group of a setgid parent directory (as the guest sees it), and new
//   directories inherit its setgid bit.
// * xattrs pass through to the host except the record (EACCES for get/set/remove, never listed)
//   and the system.* namespace (EOPNOTSUPP: POSIX ACLs are not interpreted).
// * create() on a name that exists opens it (unless O_EXCL) and leaves its record alone.
// * flush is a no-op: every write has reached the host file when write() returns.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "backends/passthrough/handles.hpp"
#include "backends/passthrough/host_fd.hpp"
#include "backends/passthrough/inode_store.hpp"
#include "backends/passthrough/ownership_record.hpp"
#include "backends/passthrough/policy.hpp"
#include "backends/passthrough/quota.hpp"
#include "core/filesystem.hpp"

namespace sandfs::passthrough {

inline constexpr std::string_view default_stat_xattr = "user.sandfs.stat";
// The name the microsandbox runtime uses (same layout); pass it as stat_xattr to serve its volumes.
inline constexpr std::string_view msb_stat_xattr = "user.msb.override_stat";

struct PassthroughConfig {
  std::string root;  // the host directory to serve
  StatVirtualization stat_virtualization = StatVirtualization::strict;
  HostPermissions host_permissions = HostPermissions::private_;
  bool readonly = false;
  std::optional<uint64_t> quota_bytes;  // cap on the bytes stored under the root (quota.hpp)
  // A quota shared with other users of the same root (every mount of a named volume and its
  // host-side file operations); used instead of quota_bytes. Whoever claims it first
  // (Quota::claim_count) counts what is stored; the others wait for that count.
  std::shared_ptr<Quota> shared_quota;
  CachePolicy cache = CachePolicy::auto_;
  bool writeback = false;             // offer FUSE_WRITEBACK_CACHE
  bool follow_root_symlinks = false;  // trust symlinks in the root path itself
  std::string stat_xattr = std::string(default_stat_xattr);
  std::optional<std::chrono::nanoseconds> entry_timeout;  // override the policy's
  std::optional<std::chrono::nanoseconds> attr_timeout;
  size_t max_cached_fds = 4096;  // O_PATH fds kept open for hot inodes (at least 1)
};

class PassthroughFs;

struct MakeResult {
  std::shared_ptr<PassthroughFs> fs;  // null on failure
  std::string error;                  // what went wrong, for a person (empty on success)
  int err = 0;                        // the errno behind it, if any

  explicit operator bool() const { return fs != nullptr; }
};

// Checks the configuration and opens the root; blocking (start-up). Fails, with a message, for
// a missing root, a root that is not a directory, a symlink in the root path (unless
// follow_root_symlinks), strict mode on a filesystem without user xattrs, off + mirror, an empty
// or unusable stat_xattr name, or no /proc.
MakeResult make_passthrough(PassthroughConfig config);

class PassthroughFs final : public Filesystem, public std::enable_shared_from_this<PassthroughFs> {
 public:
  // Use make_passthrough(). Takes ownership of both fds.
  PassthroughFs(PassthroughConfig config, int root_fd, int proc_fd_dir,
                const struct statx& root_stx, uint32_t process_umask);
  ~PassthroughFs() override;
  PassthroughFs(const PassthroughFs&) = delete;
  PassthroughFs& operator=(const PassthroughFs&) = delete;

  const PassthroughConfig& config() const { return config_; }

  // For tests and stats.
  size_t tracked_inodes() const { return store_.size(); }
  size_t cached_fds() const { return store_.cached_fds(); }
  uint64_t lookup_count(InodeId ino) const { return store_.lookup_refs(ino); }
  std::optional<uint64_t> quota_used() const;
  bool quota_ready() const { return !quota_ || quota_->ready(); }

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

  int host_fd(InodeId ino, HandleId fh) const override;
  Task<Result<size_t>> copy_from_host_fd(const RequestContext& ctx, int fd_in, uint64_t off_in,
                                         InodeId ino_out, HandleId fh_out, uint64_t off_out,
                                         uint64_t len) override;

 private:
  // What the guest sees of an object's ownership and type.
  struct GuestView {
    uint32_t mode = 0;
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t rdev = 0;
    uint32_t type() const { return mode & S_IFMT; }
  };

  // ---- passthrough.cpp: shared helpers ----
  Result<std::shared_ptr<Inode>> inode_of(InodeId ino) const;
  Task<Result<SharedFd>> fd_of(const std::shared_ptr<Inode>& n) { return store_.fd_of(n); }
  Result<std::shared_ptr<FileHandle>> file_handle(HandleId fh, InodeId ino) const;
  Result<std::shared_ptr<DirHandle>> dir_handle(HandleId fh, InodeId ino) const;
  // copy_file_range(2) from host fd `fd_in` (`own_fd`: one of ours) into the writable handle
  // `out`, charged to the quota.
  Task<Result<size_t>> copy_into(const RequestContext& ctx, int fd_in, bool own_fd, uint64_t off_in,
                                 const FileHandle& out, uint64_t off_out, uint64_t len);
  HandleId next_handle() { return next_fh_.fetch_add(1, std::memory_order_relaxed); }
  // statx of the object `fd` holds: inline when the host filesystem answers from memory.
  Task<Result<struct statx>> stat_fd(int fd) const;
  static Task<Result<struct statx>> stat_at(int dirfd, const char* name);
  // The record state of `n` for the object `stx` describes (read through `fd` unless cached).
  Task<Result<RecordCache>> record_of(Inode& n, const HostFd& fd, const struct statx& stx);
  // Raw record read, for blocking jobs: the byte count or -errno, value in `buf`.
  long read_record_raw(const HostFd& fd, char (&buf)[record_read_buffer]) const;
  // The same as one io ring operation (an io-wq trip rather than a blocking-pool job).
  Task<long> read_record_ring(const HostFd& fd, char (&buf)[record_read_buffer]) const;
  // A raw read turned into a record cache entry for an object of `host_type`.
  RecordCache make_record_cache(long n, const char (&buf)[record_read_buffer],
                                const struct statx& stx) const;
  // Writes `r` as the record of the object behind `fd`; optionally sets the host mode first.
  Task<Status> write_record(const HostFd& fd, const Record& r);
  void set_record(Inode& n, const Record& r, const struct statx& stx);
  GuestView view_of(const struct statx& stx, const RecordCache& rc) const;
  Attr attr_of(const Inode& n, const struct statx& stx, const RecordCache& rc) const;
  Entry entry_of(const Inode& n, const struct statx& stx, const RecordCache& rc) const;
  // statx + record of an inode in hand.
  Task<Result<Attr>> fresh_attr(const std::shared_ptr<Inode>& n, const SharedFd& fd,
                                struct statx* stx_out = nullptr, GuestView* view_out = nullptr);
  uint32_t open_reply_flags(bool dir) const;
  // The reply for a new file handle, with a kernel passthrough backing fd when we can do without
  // seeing its reads and writes (see passthrough.cpp).
  OpenReply file_open_reply(HandleId fh, const FileHandle& h) const;
  uint32_t host_open_flags(uint32_t guest_flags) const;
  Status check_writable() const { return config_.readonly ? Status(Errno{EROFS}) : Status(); }

  // A guest's create, link, unlink or rename bumps the directory's host ctime, which would make
  // its cached record look stale: the kernel asks for the directory's attributes after each such
  // change (default_permissions), and every answer would re-read the record on the blocking pool.
  // A change of entries cannot touch the record, so around our own change the cache follows the
  // ctime along: begin notes the ctime the cache is valid for, end (after success) moves the
  // cache to the new ctime if it is still the entry begin saw. Only where statx is in-core (two
  // cheap calls); a host process rewriting the record between the two statx calls goes unseen
  // until the directory changes again.
  struct DirChange {
    std::shared_ptr<Inode> dir;
    SharedFd fd;
    std::optional<Timespec> ctime;  // the ctime the cached record was valid for, if it was
  };
  Task<DirChange> begin_dir_change(const std::shared_ptr<Inode>& dir, const SharedFd& fd);
  Task<void> end_dir_change(const DirChange& change);

  // ---- lookup.cpp ----
  struct Probe;
  Task<void> probe_child(const std::shared_ptr<Inode>& parent, const HostFd& pfd, Probe& p);
  Task<void> read_records(std::span<Probe> probes);
  // probe_child for every probe, concurrently (dir.cpp).
  Task<void> probe_all(const std::shared_ptr<Inode>& dir, const HostFd& dir_fd,
                       std::span<Probe> probes);
  Result<Entry> commit_probe(const std::shared_ptr<Inode>& parent, Probe& p);
  // readdirplus: an entry for a name whose record is corrupt (a reference, no attributes).
  Result<Entry> commit_degraded(const std::shared_ptr<Inode>& parent, Probe& p);
  Task<Result<Entry>> lookup_child(const std::shared_ptr<Inode>& parent, const HostFd& pfd,
                                   std::string_view name, bool negative_ok);
  // The parent directory entry and its fd, for namespace operations.
  Task<Result<std::pair<std::shared_ptr<Inode>, SharedFd>>> dir_and_fd(InodeId ino);

  // ---- create.cpp ----
  Task<Result<GuestView>> view_now(const std::shared_ptr<Inode>& n, const HostFd& fd);
  Record new_record(const RequestContext& ctx, const GuestView& parent, uint32_t type,
                    uint32_t perm, uint32_t rdev) const;
  // After the host object exists: sets its host mode if the process umask got in the way,
  // writes its record; on failure removes the object again.
  Task<Status> stamp_new(const HostFd& pfd, std::string_view name, const HostFd& fd, bool is_dir,
                         uint32_t host_mode, const std::optional<Record>& rec,
                         bool record_required);
  // Registers a new object (one lookup reference) and builds its entry.
  Task<Result<Entry>> enter_new(const std::shared_ptr<Inode>& parent, std::string_view name,
                                const SharedFd& opath, const std::optional<Record>& rec);
  // mknod of a regular file and of the file-backed types; `content` for file-backed symlinks.
  Task<Result<Entry>> make_file(const RequestContext& ctx, InodeId parent, std::string_view name,
                                uint32_t guest_mode, uint32_t rdev, std::string_view content);

  // ---- remove.cpp ----
  Task<Status> remove_name(InodeId parent, std::string_view name, bool dir);

  // ---- data.cpp ----
  // Clears suid/sgid (record) and, for a privileged server, host suid and capabilities.
  Task<void> kill_priv(const std::shared_ptr<Inode>& n, const HostFd* io_fd);
  // Quota: charges growth of `n` to `end`; returns the size before, or ENOSPC.
  Task<Result<uint64_t>> charge_to(Inode& n, uint64_t end, const RequestContext& ctx);
  // Quota: after an operation that charged up to `charged_end` from `before` ended at `actual`.
  void settle(Inode& n, uint64_t before, uint64_t charged_end, uint64_t actual);
  Task<Status> wait_quota_ready(const RequestContext& ctx);

  // ---- quota_walk.cpp ----
  // Counts what is stored; run by the user that claimed the quota's count.
  static Task<void> measure_tree(std::shared_ptr<PassthroughFs> self);

  PassthroughConfig config_;
  Policy policy_;
  std::chrono::nanoseconds entry_timeout_{0};
  std::chrono::nanoseconds attr_timeout_{0};
  int proc_fd_dir_ = -1;
  uint32_t process_umask_ = 0;
  bool privileged_ = false;
  // The root's filesystem fills getattr of a pinned inode from memory (local filesystems).
  bool in_core_stat_ = false;
  std::atomic<bool> writeback_{false};
  std::atomic<bool> kernel_passthrough_{false};
  std::atomic<bool> stopping_{false};

  InodeStore store_;
  HandleTable<FileHandle> files_;
  HandleTable<DirHandle> dirs_;
  std::atomic<HandleId> next_fh_{1};
  std::shared_ptr<Quota> quota_;
};

}  // namespace sandfs::passthrough
