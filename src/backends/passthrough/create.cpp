// Creating names: create, mknod, mkdir, symlink, link.
//
// Every creation makes the host object with O_EXCL semantics (an existing name is never
// re-stamped), then, in one blocking job, corrects its host mode if the process umask cut bits
// the policy wants, and writes its ownership record. If that fails the object is removed again
// and the error returned, so a failed creation leaves nothing behind (relaxed mode on a host
// filesystem without user xattrs keeps regular files and directories without a record instead).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

namespace {

constexpr size_t symlink_max = 4095;  // PATH_MAX with its NUL

}  // namespace

Task<Result<PassthroughFs::GuestView>> PassthroughFs::view_now(const std::shared_ptr<Inode>& n,
                                                               const HostFd& fd) {
  // What the guest last saw is good enough to inherit a group from: no syscall when known.
  {
    std::lock_guard lock(n->mu);
    const RecordCache& rc = n->record;
    if (rc.state == RecordCache::State::present || rc.state == RecordCache::State::absent) {
      struct statx host {};
      host.stx_mode = static_cast<uint16_t>(rc.host_mode);
      host.stx_uid = rc.host_uid;
      host.stx_gid = rc.host_gid;
      co_return view_of(host, rc);
    }
  }
  Result<struct statx> stx = co_await stat_fd(fd.get());
  if (!stx) co_return Errno{stx.error()};
  Result<RecordCache> rc = co_await record_of(*n, fd, *stx);
  if (!rc) co_return Errno{rc.error()};
  co_return view_of(*stx, *rc);
}

Record PassthroughFs::new_record(const RequestContext& ctx, const GuestView& parent, uint32_t type,
                                 uint32_t perm, uint32_t rdev) const {
  Record r;
  r.uid = ctx.uid;
  r.gid = ctx.gid;
  r.mode = type | (perm & 07777);
  r.rdev = (type == S_IFCHR || type == S_IFBLK) ? rdev : 0;
  // A setgid directory hands its group down, and its setgid bit to subdirectories.
  if ((parent.mode & S_ISGID) != 0) {
    r.gid = parent.gid;
    if (type == S_IFDIR) r.mode |= S_ISGID;
  }
  return r;
}

Task<Status> PassthroughFs::stamp_new(const HostFd& pfd, std::string_view name, const HostFd& fd,
                                      bool is_dir, uint32_t host_mode,
                                      const std::optional<Record>& rec, bool record_required) {
  const bool fix_mode = (host_mode & process_umask_) != 0;
  if (!fix_mode && !rec) co_return ok_status();
  const std::array<char, record_size> bytes = encode_record(rec.value_or(Record{}));
  io::Ring& ring = io::Ring::current();
  Result<long> r = co_await ring.run_blocking([&]() -> long {
    if (fix_mode) {
      long m = host::fchmodat2(proc_fd_dir_, fd.proc_name(), host_mode, 0);
      if (m < 0) return m;
    }
    if (!rec) return 0;
    return host::setxattrat(proc_fd_dir_, fd.proc_name(), 0, config_.stat_xattr.c_str(),
                            bytes.data(), bytes.size(), 0);
  });
  if (r) co_return ok_status();
  if (rec && !record_required && r.error() == EOPNOTSUPP && !policy_.strict()) {
    co_return ok_status();  // relaxed on a filesystem without user xattrs: host ownership it is
  }
  const std::string n(name);
  Status undo = co_await ring.unlinkat(pfd.get(), n.c_str(), is_dir ? AT_REMOVEDIR : 0);
  (void)undo;  // the error that matters is the first one
  co_return Errno{r.error()};
}

Task<Result<Entry>> PassthroughFs::enter_new(const std::shared_ptr<Inode>& parent,
                                             std::string_view name, const SharedFd& opath,
                                             const std::optional<Record>& rec) {
  Result<struct statx> stx = co_await stat_fd(opath->get());
  if (!stx) co_return Errno{stx.error()};
  RecordCache rc;
  rc.note_host(*stx);
  rc.state = rec ? RecordCache::State::present : RecordCache::State::absent;
  if (rec) rc.record = *rec;
  // Off mode, or a relaxed create without xattr support, caches "absent"; fine: it is.
  std::shared_ptr<Inode> n = store_.acquire(*stx, opath, parent, name, &rc);
  co_return entry_of(*n, *stx, rc);
}

Task<Result<Entry>> PassthroughFs::make_file(const RequestContext& ctx, InodeId parent,
                                             std::string_view name, uint32_t guest_mode,
                                             uint32_t rdev, std::string_view content) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  auto dir = co_await dir_and_fd(parent);
  if (!dir) co_return Errno{dir.error()};
  const auto& [pnode, pfd] = *dir;

  const uint32_t type = guest_mode & S_IFMT;
  std::optional<Record> rec;
  if (policy_.records()) {
    Result<GuestView> pv = co_await view_now(pnode, *pfd);
    if (!pv) co_return Errno{pv.error()};
    rec = new_record(ctx, *pv, type, guest_mode & 07777, rdev);
  }
  const uint32_t host_mode = policy_.host_create_mode(type, guest_mode & 07777);
  // File-backed symlinks count their bytes like any file.
  const uint64_t charge = quota_ ? content.size() : 0;
  if (charge > 0) {
    if (Status ready = co_await wait_quota_ready(ctx); !ready) co_return Errno{ready.error()};
    if (!quota_->try_charge(charge)) co_return Errno{ENOSPC};
  }
  const std::string n(name);
  io::Ring& ring = io::Ring::current();
  const DirChange change = co_await begin_dir_change(pnode, pfd);
  Result<SharedFd> io =
      co_await open_beneath(pfd->get(), n.c_str(), O_WRONLY | O_CREAT | O_EXCL, host_mode);
  if (!io) {
    if (quota_) quota_->release(charge);
    co_return Errno{io.error()};
  }
  if (!content.empty()) {
    iovec v{const_cast<char*>(content.data()), content.size()};
    Result<size_t> w = co_await ring.pwritev((*io)->get(), std::span<const iovec>(&v, 1), 0);
    if (!w || *w != content.size()) {
      if (quota_) quota_->release(charge);
      const int err = w ? EIO : w.error();
      Status undo = co_await ring.unlinkat(pfd->get(), n.c_str(), 0);
      (void)undo;  // the error that matters is the first one
      co_return Errno{err};
    }
  }
  Status st = co_await stamp_new(*pfd, name, **io, false, host_mode, rec, type != S_IFREG);
  if (!st) {
    if (quota_) quota_->release(charge);
    co_return Errno{st.error()};
  }
  Result<SharedFd> opath = co_await reopen(proc_fd_dir_, **io, O_PATH);
  if (!opath) co_return Errno{opath.error()};
  Result<Entry> e = co_await enter_new(pnode, name, *opath, rec);
  co_await end_dir_change(change);
  co_return e;
}

Task<Result<Entry>> PassthroughFs::mknod(const RequestContext& ctx, InodeId parent,
                                         std::string_view name, uint32_t mode, uint32_t rdev,
                                         uint32_t umask) {
  uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  switch (type) {
    case S_IFREG:
      break;
    case S_IFIFO:
    case S_IFCHR:
    case S_IFBLK:
    case S_IFSOCK:
      // Without records there is nowhere to keep the type: the host would need a real node.
      if (!policy_.records()) {
        if (int err = check_name(name); err != 0) co_return Errno{err};
        co_return Errno{EOPNOTSUPP};
      }
      break;
    default:
      co_return Errno{EINVAL};
  }
  co_return co_await make_file(ctx, parent, name, type | (mode & ~umask & 07777), rdev, {});
}

Task<Result<Entry>> PassthroughFs::mkdir(const RequestContext& ctx, InodeId parent,
                                         std::string_view name, uint32_t mode, uint32_t umask) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  auto dir = co_await dir_and_fd(parent);
  if (!dir) co_return Errno{dir.error()};
  const auto& [pnode, pfd] = *dir;

  const uint32_t perm = mode & ~umask & 07777;
  std::optional<Record> rec;
  if (policy_.records()) {
    Result<GuestView> pv = co_await view_now(pnode, *pfd);
    if (!pv) co_return Errno{pv.error()};
    rec = new_record(ctx, *pv, S_IFDIR, perm, 0);
  }
  const uint32_t host_mode = policy_.host_create_mode(S_IFDIR, perm);
  const std::string n(name);
  io::Ring& ring = io::Ring::current();
  const DirChange change = co_await begin_dir_change(pnode, pfd);
  Status made = co_await ring.mkdirat(pfd->get(), n.c_str(), host_mode);
  if (!made) co_return Errno{made.error()};
  Result<SharedFd> opath = co_await open_beneath(pfd->get(), n.c_str(), O_PATH | O_DIRECTORY);
  if (!opath) co_return Errno{opath.error()};
  Status st = co_await stamp_new(*pfd, name, **opath, true, host_mode, rec, false);
  if (!st) co_return Errno{st.error()};
  Result<Entry> e = co_await enter_new(pnode, name, *opath, rec);
  co_await end_dir_change(change);
  co_return e;
}

Task<Result<Entry>> PassthroughFs::symlink(const RequestContext& ctx, InodeId parent,
                                           std::string_view name, std::string_view target) {
  if (target.empty()) co_return Errno{ENOENT};
  if (target.size() > symlink_max) co_return Errno{ENAMETOOLONG};
  if (target.find('\0') != std::string_view::npos) co_return Errno{EINVAL};
  if (policy_.file_backed_symlinks()) {
    co_return co_await make_file(ctx, parent, name, S_IFLNK | 0777, 0, target);
  }
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  auto dir = co_await dir_and_fd(parent);
  if (!dir) co_return Errno{dir.error()};
  const auto& [pnode, pfd] = *dir;
  const std::string n(name);
  const std::string t(target);
  const DirChange change = co_await begin_dir_change(pnode, pfd);
  Status made = co_await io::Ring::current().symlinkat(t.c_str(), pfd->get(), n.c_str());
  if (!made) co_return Errno{made.error()};
  Result<SharedFd> opath = co_await open_beneath(pfd->get(), n.c_str(), O_PATH);
  if (!opath) co_return Errno{opath.error()};
  Result<Entry> e = co_await enter_new(pnode, name, *opath, std::nullopt);
  co_await end_dir_change(change);
  co_return e;
}

Task<Result<Entry>> PassthroughFs::link(const RequestContext&, InodeId ino, InodeId new_parent,
                                        std::string_view new_name) {
  if (int err = check_name(new_name); err != 0) co_return Errno{err};
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  Result<std::shared_ptr<Inode>> src = inode_of(ino);
  if (!src) co_return Errno{src.error()};
  if ((*src)->is_dir()) co_return Errno{EPERM};
  Result<SharedFd> sfd = co_await fd_of(*src);
  if (!sfd) co_return Errno{sfd.error()};
  auto dir = co_await dir_and_fd(new_parent);
  if (!dir) co_return Errno{dir.error()};
  const auto& [pnode, pfd] = *dir;

  const std::string n(new_name);
  // Linking the magic link's target (AT_SYMLINK_FOLLOW) links exactly the object we hold, works
  // unprivileged (AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH), and stops at a host symlink.
  const DirChange change = co_await begin_dir_change(pnode, pfd);
  Status linked = co_await io::Ring::current().linkat(proc_fd_dir_, (*sfd)->proc_name(), pfd->get(),
                                                      n.c_str(), AT_SYMLINK_FOLLOW);
  if (!linked) co_return Errno{linked.error()};
  co_await end_dir_change(change);
  Result<struct statx> stx = co_await stat_fd((*sfd)->get());
  if (!stx) co_return Errno{stx.error()};
  Result<RecordCache> rc = co_await record_of(**src, **sfd, *stx);
  if (!rc) co_return Errno{rc.error()};
  std::shared_ptr<Inode> node = store_.acquire(*stx, *sfd, pnode, new_name, nullptr);
  co_return entry_of(*node, *stx, *rc);
}

// ---- create ----

Task<Result<CreateReply>> PassthroughFs::create(const RequestContext& ctx, InodeId parent,
                                                std::string_view name, uint32_t mode,
                                                uint32_t flags, uint32_t umask, bool kill_suidgid) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  auto dir = co_await dir_and_fd(parent);
  if (!dir) co_return Errno{dir.error()};
  const auto& [pnode, pfd] = *dir;

  const uint32_t perm = mode & ~umask & 07777;
  std::optional<Record> rec;
  if (policy_.records()) {
    Result<GuestView> pv = co_await view_now(pnode, *pfd);
    if (!pv) co_return Errno{pv.error()};
    rec = new_record(ctx, *pv, S_IFREG, perm, 0);
  }
  const uint32_t host_flags = host_open_flags(flags);
  const uint32_t host_mode = policy_.host_create_mode(S_IFREG, perm);
  const std::string n(name);
  const DirChange change = co_await begin_dir_change(pnode, pfd);
  Result<SharedFd> io = co_await open_beneath(
      pfd->get(), n.c_str(), (host_flags & ~O_TRUNC) | O_CREAT | O_EXCL, host_mode);
  if (!io && io.error() == EEXIST && (flags & O_EXCL) == 0) {
    // Someone else created it first: open it as it is (its record stays as it is, too).
    Result<Entry> e = co_await lookup_child(pnode, *pfd, name, false);
    if (!e) co_return Errno{e.error()};
    Result<OpenReply> o =
        co_await open(ctx, e->ino, flags & ~static_cast<uint32_t>(O_CREAT), kill_suidgid);
    if (!o) {
      store_.forget(e->ino, 1);
      co_return Errno{o.error()};
    }
    if ((flags & O_TRUNC) != 0) e->attr.size = 0;
    co_return CreateReply{*e, *o};
  }
  if (!io) co_return Errno{io.error()};

  Status st = co_await stamp_new(*pfd, name, **io, false, host_mode, rec, false);
  if (!st) co_return Errno{st.error()};
  Result<SharedFd> opath = co_await reopen(proc_fd_dir_, **io, O_PATH);
  if (!opath) co_return Errno{opath.error()};
  Result<Entry> e = co_await enter_new(pnode, name, *opath, rec);
  if (!e) co_return Errno{e.error()};
  co_await end_dir_change(change);
  std::shared_ptr<Inode> node = store_.find(e->ino);
  if (!node) co_return Errno{ESTALE};  // forgotten already: a guest bug, but no crash

  auto h = std::make_shared<FileHandle>();
  h->inode = std::move(node);
  h->fd = std::move(*io);
  h->flags = host_flags & ~static_cast<uint32_t>(O_TRUNC);
  const HandleId fh = next_handle();
  const OpenReply reply = file_open_reply(fh, *h);
  files_.insert(fh, std::move(h));
  co_return CreateReply{*e, reply};
}

}  // namespace sandfs::passthrough
