// PassthroughFs construction, negotiation, and the helpers every operation file shares.
#include "backends/passthrough/passthrough.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "backends/passthrough/host_calls.hpp"
#include "core/io/ring.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::passthrough {

using namespace std::chrono_literals;

namespace {

constexpr unsigned stat_mask = STATX_BASIC_STATS | STATX_MNT_ID | STATX_BTIME;

// The kernel's new_encode_dev(): the u32 dev_t FUSE carries.
uint32_t encode_dev(uint32_t major, uint32_t minor) {
  return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}

// Local filesystems whose getattr of an inode we hold reads only the in-core inode. Anything
// else (NFS, CIFS, FUSE, overlayfs over one of those...) may ask a server, so its statx stays on
// the io_uring path.
// The decision covers the mounts found beneath the root at start, too (by fstype name in
// /proc/self/mountinfo); a mount added under a served tree later is not seen.
bool local_fstype(std::string_view name) {
  return name == "ext4" || name == "ext3" || name == "ext2" || name == "xfs" || name == "btrfs" ||
         name == "tmpfs" || name == "f2fs";
}

bool getattr_is_in_core(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case EXT4_SUPER_MAGIC:  // also ext2 and ext3
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case F2FS_SUPER_MAGIC:
      break;
    default:
      return false;
  }
  char target[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
  if (n <= 0) return false;
  std::string root(target, static_cast<size_t>(n));
  if (root != "/") root += '/';
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    std::istringstream in(line);
    std::string id, parent, devno, mroot, point, field;
    in >> id >> parent >> devno >> mroot >> point;
    while (in >> field && field != "-") {
    }
    std::string fstype;
    in >> fstype;
    if (point.rfind(root, 0) == 0 && !local_fstype(fstype)) return false;
  }
  return true;
}

}  // namespace

PassthroughFs::PassthroughFs(PassthroughConfig config, int root_fd, int proc_fd_dir,
                             const struct statx& root_stx, uint32_t process_umask)
    : config_(std::move(config)),
      policy_{config_.stat_virtualization, config_.host_permissions},
      entry_timeout_(config_.entry_timeout.value_or(cache_timeout(config_.cache))),
      attr_timeout_(config_.attr_timeout.value_or(cache_timeout(config_.cache))),
      proc_fd_dir_(proc_fd_dir),
      process_umask_(process_umask),
      privileged_(::geteuid() == 0),
      in_core_stat_(getattr_is_in_core(root_fd)),
      store_(adopt_fd(root_fd), root_stx, config_.max_cached_fds) {
  if (config_.shared_quota) {
    quota_ = config_.shared_quota;
  } else if (config_.quota_bytes) {
    quota_ = std::make_shared<Quota>(*config_.quota_bytes);
  }
}

PassthroughFs::~PassthroughFs() {
  files_.clear();
  dirs_.clear();
  if (proc_fd_dir_ >= 0) ::close(proc_fd_dir_);
}

std::optional<uint64_t> PassthroughFs::quota_used() const {
  if (!quota_) return std::nullopt;
  return quota_->used();
}

Capabilities PassthroughFs::capabilities() const {
  Capabilities caps;
  caps.writeback_cache = config_.writeback;
  caps.readdirplus = true;
  caps.handle_killpriv_v2 = true;
  caps.atomic_o_trunc = true;
  caps.cache_symlinks = config_.cache != CachePolicy::never;
  caps.export_support = false;
  caps.posix_acl = false;
  caps.passthrough = true;
  return caps;
}

Task<Status> PassthroughFs::init(const SessionParams& params) {
  writeback_.store(params.writeback_cache && config_.writeback, std::memory_order_relaxed);
  kernel_passthrough_.store(params.passthrough, std::memory_order_relaxed);
  if (quota_ && !quota_->ready() && quota_->claim_count()) {
    // Counted in the background on this thread's ring; operations that need a charge wait.
    // A shared quota is counted once, by whoever claims it first.
    auto executor = co_await boost::asio::this_coro::executor;
    boost::asio::co_spawn(executor, measure_tree(shared_from_this()), boost::asio::detached);
  }
  co_return ok_status();
}

Task<void> PassthroughFs::destroy() {
  stopping_.store(true, std::memory_order_relaxed);
  files_.clear();
  dirs_.clear();
  co_return;
}

// ---- helpers ----

Result<std::shared_ptr<Inode>> PassthroughFs::inode_of(InodeId ino) const {
  std::shared_ptr<Inode> n = store_.find(ino);
  if (!n) return Errno{EBADF};
  return n;
}

Result<std::shared_ptr<FileHandle>> PassthroughFs::file_handle(HandleId fh, InodeId ino) const {
  std::shared_ptr<FileHandle> h = files_.find(fh);
  // A guest may pair a valid handle with another inode; trust neither alone.
  if (!h || h->inode->id != ino) return Errno{EBADF};
  return h;
}

Result<std::shared_ptr<DirHandle>> PassthroughFs::dir_handle(HandleId fh, InodeId ino) const {
  std::shared_ptr<DirHandle> h = dirs_.find(fh);
  if (!h || h->inode->id != ino) return Errno{EBADF};
  return h;
}

Task<Result<struct statx>> PassthroughFs::stat_fd(int fd) const {
  co_return co_await io::Ring::current().fstatx(
      fd, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, stat_mask,
      in_core_stat_ ? io::Ring::Residency::in_core : io::Ring::Residency::unknown);
}

Task<Result<struct statx>> PassthroughFs::stat_at(int dirfd, const char* name) {
  co_return co_await io::Ring::current().statx(
      dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, stat_mask);
}

Task<PassthroughFs::DirChange> PassthroughFs::begin_dir_change(const std::shared_ptr<Inode>& dir,
                                                               const SharedFd& fd) {
  DirChange c{dir, fd, std::nullopt};
  if (!in_core_stat_ || !policy_.records()) co_return c;
  {
    std::lock_guard lock(dir->mu);
    if (dir->record.state != RecordCache::State::present &&
        dir->record.state != RecordCache::State::absent) {
      co_return c;
    }
  }
  Result<struct statx> stx = co_await stat_fd(fd->get());
  if (!stx) co_return c;
  const Timespec now = ctime_of(*stx);
  std::lock_guard lock(dir->mu);
  if (dir->record.valid_for(now)) c.ctime = now;
  co_return c;
}

Task<void> PassthroughFs::end_dir_change(const DirChange& c) {
  if (!c.ctime) co_return;
  Result<struct statx> stx = co_await stat_fd(c.fd->get());
  if (!stx) co_return;
  std::lock_guard lock(c.dir->mu);
  if (c.dir->record.valid_for(*c.ctime)) c.dir->record.note_host(*stx);
}

long PassthroughFs::read_record_raw(const HostFd& fd, char (&buf)[record_read_buffer]) const {
  return host::getxattrat(proc_fd_dir_, fd.proc_name(), 0, config_.stat_xattr.c_str(), buf,
                          sizeof buf);
}

Task<long> PassthroughFs::read_record_ring(const HostFd& fd,
                                           char (&buf)[record_read_buffer]) const {
  // getxattr through the magic link reaches exactly the object the O_PATH fd holds (records are
  // only read for regular files and directories, so following it cannot land anywhere else).
  char path[32] = "/proc/self/fd/";
  std::strncat(path, fd.proc_name(), sizeof path - std::strlen(path) - 1);
  Result<long> n =
      co_await io::Ring::current().getxattr(path, config_.stat_xattr.c_str(), buf, sizeof buf);
  co_return n ? *n : -static_cast<long>(n.error());
}

RecordCache PassthroughFs::make_record_cache(long n, const char (&buf)[record_read_buffer],
                                             const struct statx& stx) const {
  const uint32_t host_type = stx.stx_mode & S_IFMT;
  RecordCache rc;
  rc.note_host(stx);
  Result<std::optional<Record>> r =
      classify_record_read(n, std::span<const char>(buf, sizeof buf), policy_.strict());
  if (!r) {
    rc.state = RecordCache::State::corrupt;
    rc.error = r.error();
    return rc;
  }
  if (!*r) {
    rc.state = RecordCache::State::absent;
    return rc;
  }
  if (!record_fits(**r, host_type)) {
    rc.state = RecordCache::State::corrupt;
    rc.error = EIO;
    return rc;
  }
  rc.state = RecordCache::State::present;
  rc.record = **r;
  return rc;
}

Task<Result<RecordCache>> PassthroughFs::record_of(Inode& n, const HostFd& fd,
                                                   const struct statx& stx) {
  const uint32_t type = stx.stx_mode & S_IFMT;
  if (!policy_.records() || (type != S_IFREG && type != S_IFDIR)) {
    // Nothing to read; remember the host's view (what the guest sees) all the same.
    RecordCache none;
    none.state = RecordCache::State::absent;
    none.note_host(stx);
    {
      std::lock_guard lock(n.mu);
      n.record = none;
    }
    co_return none;
  }
  const Timespec ctime = ctime_of(stx);
  {
    std::lock_guard lock(n.mu);
    if (n.record.valid_for(ctime)) {
      if (n.record.state == RecordCache::State::corrupt) co_return Errno{n.record.error};
      co_return n.record;
    }
  }
  char buf[record_read_buffer];
  const long count = co_await read_record_ring(fd, buf);
  RecordCache rc = make_record_cache(count, buf, stx);
  // Transient errors (EACCES, ENOMEM, ...) are not cached; corrupt and absent records are.
  if (rc.state != RecordCache::State::corrupt || rc.error == EIO) {
    std::lock_guard lock(n.mu);
    n.record = rc;
  }
  if (rc.state == RecordCache::State::corrupt) co_return Errno{rc.error};
  co_return rc;
}

Task<Status> PassthroughFs::write_record(const HostFd& fd, const Record& r) {
  const std::array<char, record_size> bytes = encode_record(r);
  Result<long> res = co_await io::Ring::current().run_blocking([&]() -> long {
    return host::setxattrat(proc_fd_dir_, fd.proc_name(), 0, config_.stat_xattr.c_str(),
                            bytes.data(), bytes.size(), 0);
  });
  if (!res) co_return Errno{res.error()};
  co_return ok_status();
}

void PassthroughFs::set_record(Inode& n, const Record& r, const struct statx& stx) {
  std::lock_guard lock(n.mu);
  n.record.state = RecordCache::State::present;
  n.record.record = r;
  n.record.note_host(stx);
  n.record.error = 0;
}

PassthroughFs::GuestView PassthroughFs::view_of(const struct statx& stx,
                                                const RecordCache& rc) const {
  GuestView v;
  if (rc.state == RecordCache::State::present) {
    const uint32_t host_type = stx.stx_mode & S_IFMT;
    v.mode = host_type == S_IFDIR ? S_IFDIR | (rc.record.mode & 07777) : rc.record.mode;
    v.uid = rc.record.uid;
    v.gid = rc.record.gid;
    const uint32_t type = v.mode & S_IFMT;
    v.rdev = (type == S_IFCHR || type == S_IFBLK) ? rc.record.rdev : 0;
    return v;
  }
  v.mode = stx.stx_mode;
  v.uid = stx.stx_uid;
  v.gid = stx.stx_gid;
  v.rdev = encode_dev(stx.stx_rdev_major, stx.stx_rdev_minor);
  return v;
}

Attr PassthroughFs::attr_of(const Inode& n, const struct statx& stx, const RecordCache& rc) const {
  Attr a;
  a.ino = n.id;
  a.size = stx.stx_size;
  a.blocks = stx.stx_blocks;
  a.atime = Timespec{stx.stx_atime.tv_sec, stx.stx_atime.tv_nsec};
  a.mtime = Timespec{stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec};
  a.ctime = Timespec{stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec};
  a.nlink = stx.stx_nlink;
  a.blksize = stx.stx_blksize;
  const GuestView v = view_of(stx, rc);
  a.mode = v.mode;
  a.uid = v.uid;
  a.gid = v.gid;
  a.rdev = v.rdev;
  return a;
}

Entry PassthroughFs::entry_of(const Inode& n, const struct statx& stx,
                              const RecordCache& rc) const {
  Entry e;
  e.ino = n.id;
  e.generation = n.generation;
  e.attr = attr_of(n, stx, rc);
  e.entry_timeout = entry_timeout_;
  e.attr_timeout = attr_timeout_;
  return e;
}

Task<Result<Attr>> PassthroughFs::fresh_attr(const std::shared_ptr<Inode>& n, const SharedFd& fd,
                                             struct statx* stx_out, GuestView* view_out) {
  Result<struct statx> stx = co_await stat_fd(fd->get());
  if (!stx) co_return Errno{stx.error()};
  Result<RecordCache> rc = co_await record_of(*n, *fd, *stx);
  if (!rc) co_return Errno{rc.error()};
  if (stx_out != nullptr) *stx_out = *stx;
  if (view_out != nullptr) *view_out = view_of(*stx, *rc);
  co_return attr_of(*n, *stx, *rc);
}

uint32_t PassthroughFs::open_reply_flags(bool dir) const {
  return cache_open_flags(config_.cache, dir);
}

// Kernel passthrough: the kernel then reads and writes the host file itself and we see no WRITE.
// We hand out the handle's own host fd when that loses nothing:
// * never under a quota: its writes would not be charged. (Not even for read-only opens: while a
//   reader holds an inode in passthrough mode the kernel fails every ordinary open of it with
//   EIO, so writers would break.)
// * never for a file the guest sees with setuid/setgid: a write must clear them (KILLPRIV_V2),
//   and the kernel's own write path would not. Decided per inode, so all opens of it agree.
// Everything else (quota-free, ordinary files) is served by the kernel: reads at host speed.
OpenReply PassthroughFs::file_open_reply(HandleId fh, const FileHandle& h) const {
  OpenReply reply{fh, open_reply_flags(false)};
  if (!kernel_passthrough_.load(std::memory_order_relaxed) || quota_) return reply;
  {
    std::lock_guard lock(h.inode->mu);
    const RecordCache& rc = h.inode->record;
    if (rc.state == RecordCache::State::unknown || rc.state == RecordCache::State::corrupt) {
      return reply;
    }
    const uint32_t mode = rc.state == RecordCache::State::present ? rc.record.mode : rc.host_mode;
    if (has_suidgid(mode)) return reply;
  }
  reply.backing_fd = h.fd->get();
  return reply;
}

uint32_t PassthroughFs::host_open_flags(uint32_t guest_flags) const {
  // Only flags that mean something for an fd we read and write positionally. Dropped on purpose:
  // O_CREAT/O_EXCL (creation is create()'s business), O_NOFOLLOW/O_DIRECTORY/O_PATH (the object
  // is already resolved), O_DIRECT (transport buffers need not be aligned; the guest kernel
  // already bypasses its cache), O_NOATIME (EPERM on files the server does not own), O_NOCTTY,
  // O_ASYNC, FMODE_EXEC (0x20) and anything unknown.
  uint32_t flags = guest_flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_DSYNC | O_SYNC | O_NONBLOCK);
  if ((flags & O_ACCMODE) == O_ACCMODE) flags &= ~static_cast<uint32_t>(O_ACCMODE);  // "no access"
  if (writeback_.load(std::memory_order_relaxed)) {
    // With a writeback cache the kernel reads pages back to fill partial writes, and computes
    // append offsets itself from its own idea of the size.
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~static_cast<uint32_t>(O_APPEND);
  }
  return flags;
}

// ---- forget ----

void PassthroughFs::forget(InodeId ino, uint64_t nlookup) {
  store_.forget(ino, nlookup);
}

}  // namespace sandfs::passthrough
