// Attributes: getattr, setattr, readlink, access, statfs.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <limits>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/io/ring.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::passthrough {

namespace {

constexpr uint64_t max_offset = std::numeric_limits<int64_t>::max();
constexpr size_t link_max = 4096;

timespec utime_of(bool set, bool now, const Timespec& t) {
  if (!set) return timespec{0, UTIME_OMIT};
  if (now) return timespec{0, UTIME_NOW};
  return timespec{static_cast<time_t>(t.sec), static_cast<long>(t.nsec)};
}

}  // namespace

Task<Result<AttrReply>> PassthroughFs::getattr(const RequestContext&, InodeId ino,
                                               std::optional<HandleId> fh) {
  // Through the handle when there is one: it works after the inode is forgotten or unlinked.
  if (fh) {
    if (std::shared_ptr<FileHandle> h = files_.find(*fh); h && h->inode->id == ino) {
      Result<Attr> a = co_await fresh_attr(h->inode, h->fd);
      if (!a) co_return Errno{a.error()};
      co_return AttrReply{*a, attr_timeout_};
    }
  }
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  Result<Attr> a = co_await fresh_attr(*n, *fd);
  if (!a) co_return Errno{a.error()};
  co_return AttrReply{*a, attr_timeout_};
}

Task<Result<AttrReply>> PassthroughFs::setattr(const RequestContext& ctx, InodeId ino,
                                               const SetAttrIn& in) {
  using namespace fuse;
  const uint32_t v = in.valid;
  const bool set_mode = (v & FATTR_MODE) != 0;
  const bool set_owner = (v & (FATTR_UID | FATTR_GID)) != 0;
  const bool set_size = (v & FATTR_SIZE) != 0;
  const bool set_atime = (v & (FATTR_ATIME | FATTR_ATIME_NOW)) != 0;
  const bool set_mtime = (v & (FATTR_MTIME | FATTR_MTIME_NOW)) != 0;
  const bool kill_flag = (v & FATTR_KILL_SUIDGID) != 0;
  if (config_.readonly && (set_mode || set_owner || set_size || set_atime || set_mtime)) {
    co_return Errno{EROFS};
  }
  if (set_owner && !policy_.records()) co_return Errno{EPERM};
  if (set_size && in.size > max_offset) co_return Errno{EFBIG};

  Result<std::shared_ptr<Inode>> found = inode_of(ino);
  if (!found) co_return Errno{found.error()};
  const std::shared_ptr<Inode>& n = *found;
  std::shared_ptr<FileHandle> handle;
  if ((v & FATTR_FH) != 0 && in.fh) {
    Result<std::shared_ptr<FileHandle>> h = file_handle(*in.fh, ino);
    if (h) handle = std::move(*h);  // a directory handle, or none: go by the inode
  }
  Result<SharedFd> fd = co_await fd_of(n);
  if (!fd) co_return Errno{fd.error()};
  struct statx stx {};
  GuestView view;
  Result<Attr> current = co_await fresh_attr(n, *fd, &stx, &view);
  if (!current) co_return Errno{current.error()};
  const uint32_t host_type = n->host_type;
  const uint32_t guest_type = view.type();

  // ---- plan ----
  io::Ring& ring = io::Ring::current();
  SharedFd size_fd;
  uint64_t size_before = stx.stx_size;
  uint64_t charged_before = 0;
  if (set_size) {
    if (guest_type == S_IFDIR) co_return Errno{EISDIR};
    if (guest_type != S_IFREG || host_type != S_IFREG) co_return Errno{EINVAL};
    if (handle && handle->writable()) {
      size_fd = handle->fd;
    } else {
      Result<SharedFd> w = co_await reopen(proc_fd_dir_, **fd, O_WRONLY);
      if (!w) co_return Errno{w.error()};
      size_fd = std::move(*w);
    }
    if (quota_ && in.size > size_before) {
      n->size.store(size_before, std::memory_order_relaxed);
      Result<uint64_t> charged = co_await charge_to(*n, in.size, ctx);
      if (!charged) co_return Errno{charged.error()};
      charged_before = *charged;
    }
  }
  // Linux drops setuid/setgid on a chown of a non-directory, and on truncation when asked.
  const bool kill = !set_mode && ((set_owner && guest_type != S_IFDIR) || kill_flag);

  std::optional<Record> new_rec;
  std::optional<uint32_t> host_mode;
  if (policy_.records() && (set_mode || set_owner || kill)) {
    Record r;
    {
      std::lock_guard lock(n->mu);
      if (n->record.state == RecordCache::State::present) {
        r = n->record.record;
      } else {
        r = Record{view.uid, view.gid, view.mode, 0};
      }
    }
    if (set_mode) r.mode = (r.mode & S_IFMT) | (in.mode & 07777);
    if ((v & FATTR_UID) != 0) r.uid = in.uid;
    if ((v & FATTR_GID) != 0) r.gid = in.gid;
    if (kill) r.mode = kill_suidgid_bits(r.mode);
    if (set_mode || set_owner || r.mode != view.mode) new_rec = r;
    if (set_mode) host_mode = policy_.host_chmod(host_type, guest_type, in.mode);
  } else if (!policy_.records()) {
    if (set_mode) host_mode = policy_.host_chmod(host_type, guest_type, in.mode);
    if (kill && has_suidgid(view.mode) && host_type != S_IFLNK) {
      host_mode = kill_suidgid_bits(view.mode) & 07777;
    }
  }
  if (host_mode && host_type != S_IFREG && host_type != S_IFDIR && policy_.records()) {
    host_mode.reset();  // only regular files and directories ever follow the guest
  }
  const bool set_times = set_atime || set_mtime;
  // A real host symlink (relaxed and off modes, or one made on the host) cannot carry a record:
  // user xattrs are not allowed on symlinks. A chown to the owner it already shows changes
  // nothing and succeeds (tar -x and cp -a as root do exactly that); any real change, and any
  // chmod (Linux has no lchmod either), is EPERM.
  if (host_type == S_IFLNK && new_rec && !set_mode && new_rec->uid == view.uid &&
      new_rec->gid == view.gid && new_rec->mode == view.mode) {
    new_rec.reset();
  }
  if (host_type == S_IFLNK && (host_mode || new_rec)) co_return Errno{EPERM};

  // ---- apply: one blocking job, host mode before the record so a failure leaves no half ----
  const std::array<char, record_size> bytes = encode_record(new_rec.value_or(Record{}));
  const timespec times[2] = {
      utime_of(set_atime, (v & FATTR_ATIME_NOW) != 0, in.atime),
      utime_of(set_mtime, (v & FATTR_MTIME_NOW) != 0, in.mtime),
  };
  const int path_fd = (*fd)->get();
  const char* proc_name = (*fd)->proc_name();
  const int trunc_fd = size_fd ? size_fd->get() : -1;
  const bool lnk = host_type == S_IFLNK;
  // Linux drops a file capability with setuid (chown, and truncation by the unprivileged). The
  // host kernel does it for our own ftruncate; a chown only ever touches the record, so the host
  // capability goes here. Best effort: an unprivileged server may not remove one the host set.
  const bool drop_caps = kill && host_type == S_IFREG;
  Result<long> applied = co_await ring.run_blocking([&]() -> long {
    if (host_mode) {
      long r = host::fchmodat2(proc_fd_dir_, proc_name, *host_mode, 0);
      if (r < 0) return r;
    }
    if (trunc_fd >= 0 && ::ftruncate(trunc_fd, static_cast<off_t>(in.size)) != 0) {
      return host::neg_errno();
    }
    if (new_rec) {
      long r = host::setxattrat(proc_fd_dir_, proc_name, 0, config_.stat_xattr.c_str(),
                                bytes.data(), bytes.size(), 0);
      if (r < 0) return r;
    }
    if (set_times &&
        ::utimensat(path_fd, "", times, AT_EMPTY_PATH | (lnk ? AT_SYMLINK_NOFOLLOW : 0)) != 0) {
      return host::neg_errno();
    }
    if (drop_caps &&
        host::getxattrat(proc_fd_dir_, proc_name, 0, "security.capability", nullptr, 0) >= 0) {
      host::removexattrat(proc_fd_dir_, proc_name, 0, "security.capability");
    }
    return 0;
  });
  if (set_size && quota_) {
    if (in.size > size_before) {
      settle(*n, charged_before, in.size, applied ? in.size : charged_before);
    } else if (applied) {
      quota_->release(size_before - in.size);
      n->size.store(in.size, std::memory_order_relaxed);
    }
  }
  if (!applied) co_return Errno{applied.error()};
  if (set_size && kill_flag && privileged_) co_await kill_priv(n, size_fd.get());

  Result<struct statx> after = co_await stat_fd(path_fd);
  if (!after) co_return Errno{after.error()};
  if (new_rec) set_record(*n, *new_rec, *after);
  RecordCache rc;
  {
    std::lock_guard lock(n->mu);
    rc = n->record;
  }
  if (!policy_.records() || (host_type != S_IFREG && host_type != S_IFDIR)) {
    rc.state = RecordCache::State::absent;
  } else if (!new_rec) {
    Result<RecordCache> fresh = co_await record_of(*n, **fd, *after);
    if (!fresh) co_return Errno{fresh.error()};
    rc = *fresh;
  }
  co_return AttrReply{attr_of(*n, *after, rc), attr_timeout_};
}

Task<Result<std::string>> PassthroughFs::readlink(const RequestContext&, InodeId ino) {
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  io::Ring& ring = io::Ring::current();
  std::string out(link_max, '\0');

  if ((*n)->host_type == S_IFLNK) {
    const int f = (*fd)->get();
    Result<long> r = co_await ring.run_blocking([&]() -> long {
      ssize_t len = ::readlinkat(f, "", out.data(), out.size());
      return len < 0 ? host::neg_errno() : static_cast<long>(len);
    });
    if (!r) co_return Errno{r.error()};
    out.resize(static_cast<size_t>(*r));
    co_return out;
  }
  // A file-backed symlink: only when the record says so (else readlink would read file bytes).
  if (!(*n)->is_reg() || !policy_.records()) co_return Errno{EINVAL};
  Result<struct statx> stx = co_await stat_fd((*fd)->get());
  if (!stx) co_return Errno{stx.error()};
  Result<RecordCache> rc = co_await record_of(**n, **fd, *stx);
  if (!rc) co_return Errno{rc.error()};
  if (rc->state != RecordCache::State::present || rc->record.type() != S_IFLNK) {
    co_return Errno{EINVAL};
  }
  Result<SharedFd> io = co_await reopen(proc_fd_dir_, **fd, O_RDONLY);
  if (!io) co_return Errno{io.error()};
  iovec v{out.data(), out.size()};
  Result<size_t> got = co_await ring.preadv((*io)->get(), std::span<const iovec>(&v, 1), 0);
  if (!got) co_return Errno{got.error()};
  out.resize(*got);
  co_return out;
}

Task<Status> PassthroughFs::access(const RequestContext& ctx, InodeId ino, uint32_t mask) {
  if ((mask & ~static_cast<uint32_t>(R_OK | W_OK | X_OK)) != 0) co_return Errno{EINVAL};
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  if (mask == F_OK) co_return ok_status();
  GuestView view;
  Result<Attr> a = co_await fresh_attr(*n, *fd, nullptr, &view);
  if (!a) co_return Errno{a.error()};
  if ((mask & W_OK) != 0 && config_.readonly) co_return Errno{EROFS};

  const uint32_t mode = view.mode;
  if (ctx.uid == 0) {
    // Root reads and writes anything; it may execute only what someone may (any directory).
    if ((mask & X_OK) != 0 && view.type() != S_IFDIR && (mode & 0111) == 0) {
      co_return Errno{EACCES};
    }
    co_return ok_status();
  }
  uint32_t granted = mode & 07;
  if (ctx.uid == view.uid) {
    granted = (mode >> 6) & 07;
  } else if (ctx.gid == view.gid) {
    granted = (mode >> 3) & 07;
  }
  if ((mask & granted) != mask) co_return Errno{EACCES};
  co_return ok_status();
}

Task<Result<StatFs>> PassthroughFs::statfs(const RequestContext& ctx, InodeId ino) {
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  // Right after mount the quota is still counting the tree: answer what is really left, like
  // the writes that wait for the count, rather than a cap that looks all free.
  if (Status ready = co_await wait_quota_ready(ctx); !ready) co_return Errno{ready.error()};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  struct statfs host {};
  const int f = (*fd)->get();
  Result<long> r = co_await io::Ring::current().run_blocking(
      [&]() -> long { return ::fstatfs(f, &host) == 0 ? 0 : host::neg_errno(); });
  if (!r) co_return Errno{r.error()};

  StatFs st;
  st.bsize = static_cast<uint32_t>(host.f_bsize);
  st.frsize = static_cast<uint32_t>(host.f_frsize != 0 ? host.f_frsize : host.f_bsize);
  st.blocks = host.f_blocks;
  st.bfree = host.f_bfree;
  st.bavail = host.f_bavail;
  st.files = host.f_files;
  st.ffree = host.f_ffree;
  st.namelen = static_cast<uint32_t>(host.f_namelen);
  if (quota_) {
    // The cap and what is left of it; never more than the host really has free.
    constexpr uint32_t block = 4096;
    st.bsize = st.frsize = block;
    const uint64_t host_free =
        host.f_bavail * static_cast<uint64_t>(host.f_frsize ? host.f_frsize : host.f_bsize);
    st.blocks = quota_->limit() / block;
    st.bfree = st.bavail = std::min(quota_->available(), host_free) / block;
  }
  co_return st;
}

}  // namespace sandfs::passthrough
