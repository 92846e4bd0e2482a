// DualFs: a writable backend A over a backend B, both arbitrary Filesystems (so DualFs nests).
//
// DualFs owns no data. It keeps its own inode numbers (inode_table.hpp), each standing for an A
// inode, a B inode or, for a directory seen on both sides, both; the policy (policy.hpp) says in
// which order the two are searched; whiteouts and opaque directories (whiteouts.hpp) hide what
// was removed from B; merged listings are snapshotted per directory handle (merged_dir.hpp).
// B is never written. Every change goes to A:
// * a change to a B file (write-open, O_TRUNC, setattr, xattr change, link, rename) copies it
//   up first (copy_up.cpp): data in chunks (copy_file_range between two host files, else reads
//   and writes through the Filesystem interface; holes kept), symlinks, special
//   files, xattrs, owner, mode and times, installed atomically through a hidden staging
//   directory in A, exactly once however many requests trigger it;
// * a change inside a B directory first creates the directory chain in A ("promotion") with
//   B's mode, owner, times and xattrs.
//
// Files, one concern each:
//   policy, inode_table, flight (single-flight waits), whiteouts, child_listing, copy_up (its
//   contract heads copy_up.cpp),
//   merged_dir (opendir/readdir/readdirplus), lookup (lookup/forget/getattr/readlink/statfs/
//   access/xattr reads), namespace (mknod/mkdir/symlink/link/create), remove (unlink/rmdir),
//   rename, data (open/read/write/... on handles), metadata (setattr/setxattr/removexattr).
//
// ## Semantics worth knowing
// * Attributes and entries carry DualFs inode numbers; timeouts and open flags come from
//   DualFsConfig::cache, not from the children.
// * A directory's attributes come from A when it has an A side (promotion copied B's), else B.
// * Renaming a directory that has a B side (B-only or merged) answers EXDEV, as overlayfs does
//   without redirect_dir: `mv` falls back to copy and delete. So does renaming over one, and a
//   RENAME_EXCHANGE involving one. Files are copied up and renamed in A.
// * rmdir of a merged directory is ENOTEMPTY while its merged listing has any entry.
// * statfs reports A, where every write lands.
// * copy_file_range between a handle on A and one on B answers EXDEV (the kernel copies itself).
// * No writeback cache, no kernel passthrough: every write must pass through DualFs.
// * Each copy-up and directory promotion is reported to the mount's hooks (core/hooks.hpp,
//   through SessionParams::events): a BackendEvent with DualFs's inode, the bytes copied (the
//   size of the copy; 0 for an O_TRUNC copy-up, a symlink, a special file or a failure), the
//   duration (ancestors' promotions included) and the outcome. A trigger that finds the node
//   already copied up, or waits for another's copy-up, reports nothing.
// * Names starting with ".sandfs-dual." are reserved (whiteouts.hpp): ENOENT on lookup, EPERM
//   on creation.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backends/dualfs/inode_table.hpp"
#include "backends/dualfs/policy.hpp"
#include "backends/dualfs/whiteouts.hpp"
#include "core/filesystem.hpp"
#include "core/hooks.hpp"

namespace sandfs::dualfs {

struct DualFsConfig {
  std::shared_ptr<Filesystem> a;  // writable upper
  std::shared_ptr<Filesystem> b;  // lower, never written
  std::shared_ptr<const Policy> policy = read_b_write_a_policy();
  // markers when A keeps them across remounts (PassthroughFs), memory otherwise.
  WhiteoutStorage whiteouts = WhiteoutStorage::memory;
  CachePolicy cache = CachePolicy::auto_;
  size_t copy_chunk = size_t{1} << 20;  // bytes per read/write of a copy-up
  // When B and A both serve host files (Filesystem::host_fd, copy_from_host_fd): copy-up data
  // goes by copy_file_range(2) in pieces of host_copy_chunk bytes, each on the blocking pool.
  bool host_copy = true;
  size_t host_copy_chunk = size_t{8} << 20;
};

struct DirSnapshot;

class DualFs final : public Filesystem {
 public:
  // Throws std::invalid_argument when a backend or the policy is missing.
  explicit DualFs(DualFsConfig config);
  ~DualFs() override;
  DualFs(const DualFs&) = delete;
  DualFs& operator=(const DualFs&) = delete;

  const Policy& policy() const { return *config_.policy; }
  // For tests and stats.
  size_t tracked_inodes() const { return table_.size(); }
  uint64_t copy_ups() const { return copy_ups_.load(std::memory_order_relaxed); }
  uint64_t copied_bytes() const { return copied_bytes_.load(std::memory_order_relaxed); }
  // The part of copied_bytes() that copy_file_range(2) moved between host files.
  uint64_t host_copied_bytes() const { return host_copied_bytes_.load(std::memory_order_relaxed); }

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
  // A DualFs stacked on another passes its children's host files through.
  int host_fd(InodeId ino, HandleId fh) const override;
  Task<Result<size_t>> copy_from_host_fd(const RequestContext& ctx, int fd_in, uint64_t off_in,
                                         InodeId ino_out, HandleId fh_out, uint64_t off_out,
                                         uint64_t len) override;

 private:
  struct Handle {
    NodePtr node;
    Side side = Side::a;
    InodeId child = 0;
    HandleId child_fh = 0;
    bool dir = false;
    std::shared_ptr<DirSnapshot> listing;  // dir handles
  };
  // A node found by name, with one reference taken for the caller, and its attributes.
  struct Found {
    NodePtr node;
    Attr attr;
  };

  // ---- dualfs.cpp: shared helpers ----
  Filesystem& fs(Side s) const { return s == Side::a ? *config_.a : *config_.b; }
  Result<NodePtr> node_of(InodeId ino) const;
  // Gives child references back (forget on the children).
  void give_back(std::vector<ChildRef>& refs);
  void drop_ref(const NodePtr& n);
  Entry entry_for(const NodePtr& n, Attr attr) const;
  AttrReply attr_reply(const NodePtr& n, Attr attr) const;
  int admit(OpKind op, InodeId ino, std::string_view name = {}, uint32_t flags = 0,
            bool write_intent = false) const;
  int admit(OpInfo info) const;
  // Makes `n` changeable in A: promotes a directory, copies anything else up (upgrade), or
  // answers EROFS for a B object when the policy keeps B read-only (Policy::copy_up).
  Task<Status> make_changeable(const NodePtr& n, bool truncate);
  // A change must white B's name out: EROFS when the policy keeps B read-only, else 0.
  int may_hide_b() const { return config_.policy->copy_up() ? 0 : EROFS; }
  HandleId add_handle(std::shared_ptr<Handle> h);
  Result<std::shared_ptr<Handle>> handle_of(HandleId fh, InodeId ino, bool dir) const;
  std::shared_ptr<Handle> take_handle(HandleId fh, InodeId ino, bool dir);
  // The mount's hooks (SessionParams::events of the latest init()), or null.
  std::shared_ptr<const EventSink> event_sink() const;
  // Reports a finished promotion (directory) or copy-up of `n` that started at `start`; a
  // copy-up's bytes are the size of the file it copied (`data_size`, which copy_up_now sets:
  // 0 for `truncate` and non-files; failures report 0).
  void report_upgrade(const EventSink& sink, const NodePtr& n,
                      std::chrono::steady_clock::time_point start, const Status& outcome,
                      uint64_t data_size);
  // The side whose attributes, data and xattrs a node shows: A when it has one.
  static Side active_side(const InodeTable::View& v) { return v.a != 0 ? Side::a : Side::b; }

  // init: empties A's staging directory of temporaries a crash left behind.
  Task<void> remove_leftovers();

  // ---- lookup.cpp ----
  // Finds `name` in directory `parent` through the policy and binds it; ENOENT when absent.
  Task<Result<Found>> resolve(const RequestContext& ctx, const NodePtr& parent,
                              std::string_view name);
  // B has a visible (not whited-out) object `name` in the directory `parent` stands for.
  Task<Result<bool>> b_has_visible(const RequestContext& ctx, const NodePtr& parent,
                                   std::string_view name);

  // ---- copy_up.hpp / copy_up.cpp ----
  // Gives `n` an A side: promotes a directory (and its ancestors), copies up anything else
  // (without data when `truncate`). Once per node; concurrent callers wait for the one running.
  Task<Status> upgrade(const NodePtr& n, bool truncate);
  Task<Status> promote_now(const NodePtr& dir);
  // Copies up a non-directory; on success `data_size` is the size of the regular file it copied.
  Task<Status> copy_up_now(const NodePtr& n, bool truncate, uint64_t& data_size);
  // One file's data copy: B's open handle, A's, and how the bytes travel.
  struct CopyJob {
    InodeId b_ino = 0;
    HandleId b_fh = 0;
    InodeId a_ino = 0;
    HandleId a_fh = 0;
    uint64_t size = 0;         // B's size when the copy began
    int host_in = -1;          // B's host fd while copy_file_range works, else -1
    bool dense = false;        // no holes to keep: one pass over [0, size), no size set first
    std::vector<char> buffer;  // the read/write path's buffer, allocated on first use
  };
  Task<Status> copy_data(InodeId b_ino, InodeId a_ino, HandleId a_fh, const Attr& from);
  // Sets A's size, then copies B's data extents (holes stay holes); a dense job in one pass.
  Task<Status> copy_extents(CopyJob& job, uint64_t size);
  // Copies [offset, end); returns where it stopped (short when B ended early).
  Task<Result<uint64_t>> copy_range(CopyJob& job, uint64_t offset, uint64_t end);
  Task<Status> copy_xattrs(InodeId b_ino, InodeId a_ino);
  Task<Status> copy_metadata(InodeId a_ino, const Attr& from, bool symlink);
  Task<Result<InodeId>> staging_dir();
  // The A directory of `parent`, promoting it first.
  Task<Result<InodeId>> a_dir_of(const NodePtr& parent);

  // ---- merged_dir.cpp ----
  Task<Result<std::shared_ptr<DirSnapshot>>> snapshot(const RequestContext& ctx,
                                                      const NodePtr& dir);
  // The merged listing is empty (for rmdir and rename over a directory).
  Task<Result<bool>> dir_is_empty(const RequestContext& ctx, const NodePtr& dir);

  // ---- namespace.cpp ----
  // Checks `name` is free in `parent` (EEXIST when visible) and returns parent's A directory.
  Task<Result<InodeId>> prepare_new(const RequestContext& ctx, const NodePtr& parent,
                                    std::string_view name);
  // Binds a new A object (its entry holding one A reference) under `parent`.
  Entry bind_new_a(const NodePtr& parent, std::string_view name, const Entry& child);
  Task<Result<Entry>> make_in_a(const RequestContext& ctx, InodeId parent, std::string_view name,
                                uint32_t mode, uint32_t rdev, uint32_t umask,
                                std::string_view target, OpKind op);

  // ---- remove.cpp ----
  Task<Status> remove_name(const RequestContext& ctx, InodeId parent, std::string_view name,
                           bool dir);

  // ---- data.cpp ----
  Task<Result<OpenReply>> open_node(const RequestContext& ctx, const NodePtr& n, uint32_t flags,
                                    bool kill_suidgid);

  DualFsConfig config_;
  std::chrono::nanoseconds entry_timeout_{0};
  std::chrono::nanoseconds attr_timeout_{0};
  InodeTable table_;
  Whiteouts whiteouts_;

  mutable std::mutex handles_mu_;
  std::unordered_map<HandleId, std::shared_ptr<Handle>> handles_;
  std::atomic<HandleId> next_fh_{1};

  std::mutex staging_mu_;
  InodeId staging_ = 0;  // A inode of the staging directory, 0 until the first copy-up
  std::atomic<uint64_t> staging_seq_{0};
  uint64_t instance_tag_ = 0;  // keeps temp names of this run apart from leftovers of others

  mutable std::mutex events_mu_;
  std::shared_ptr<const EventSink> events_;  // SessionParams::events of the latest init()

  std::atomic<uint64_t> copy_ups_{0};
  std::atomic<uint64_t> copied_bytes_{0};
  std::atomic<uint64_t> host_copied_bytes_{0};
};

std::shared_ptr<DualFs> make_dualfs(DualFsConfig config);

}  // namespace sandfs::dualfs
