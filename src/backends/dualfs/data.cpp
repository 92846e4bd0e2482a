// Opening files and the operations on their handles. A handle is bound to one side's child
// handle for its life: a copy-up after the open does not move it (the kernel only reaches a
// copy through a new open).
#include <fcntl.h>

#include "backends/dualfs/dualfs.hpp"

namespace sandfs::dualfs {

namespace {

bool write_intent(uint32_t flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC) != 0;
}

}  // namespace

Task<Result<OpenReply>> DualFs::open_node(const RequestContext& ctx, const NodePtr& n,
                                          uint32_t flags, bool kill_suidgid) {
  if (n->is_dir()) co_return Errno{EISDIR};
  if (write_intent(flags) && table_.view(*n).a == 0) {
    Status up = co_await make_changeable(n, (flags & O_TRUNC) != 0);
    if (!up) co_return Errno{up.error()};
  }
  const InodeTable::View v = table_.view(*n);
  const Side side = active_side(v);
  const InodeId child = v.on(side);
  if (child == 0) co_return Errno{ENOENT};
  Result<OpenReply> opened = co_await fs(side).open(ctx, child, flags, kill_suidgid);
  if (!opened) co_return Errno{opened.error()};
  auto h = std::make_shared<Handle>();
  h->node = n;
  h->side = side;
  h->child = child;
  h->child_fh = opened->fh;
  const HandleId fh = add_handle(std::move(h));
  co_return OpenReply{fh, cache_open_flags(config_.cache, false)};
}

Task<Result<OpenReply>> DualFs::open(const RequestContext& ctx, InodeId ino, uint32_t flags,
                                     bool kill_suidgid) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::open, ino, {}, flags, write_intent(flags)); e != 0) co_return Errno{e};
  co_return co_await open_node(ctx, *n, flags, kill_suidgid);
}

Task<Result<size_t>> DualFs::read(const RequestContext& ctx, InodeId ino, HandleId fh,
                                  uint64_t offset, uint32_t size, const IoVecs& dst) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  co_return co_await fs(hd.side).read(ctx, hd.child, hd.child_fh, offset, size, dst);
}

Task<Result<size_t>> DualFs::write(const RequestContext& ctx, InodeId ino, HandleId fh,
                                   uint64_t offset, const IoVecs& src, bool kill_suidgid) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  // A handle on B is read-only by construction (write opens copy up first); B is never written.
  if (hd.side == Side::b) co_return Errno{EBADF};
  co_return co_await fs(hd.side).write(ctx, hd.child, hd.child_fh, offset, src, kill_suidgid);
}

Task<Status> DualFs::flush(const RequestContext& ctx, InodeId ino, HandleId fh,
                           uint64_t lock_owner) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  co_return co_await fs(hd.side).flush(ctx, hd.child, hd.child_fh, lock_owner);
}

Task<Status> DualFs::release(const RequestContext& ctx, InodeId ino, HandleId fh, uint32_t flags) {
  std::shared_ptr<Handle> h = take_handle(fh, ino, false);
  if (!h) co_return Errno{EBADF};
  co_return co_await fs(h->side).release(ctx, h->child, h->child_fh, flags);
}

Task<Status> DualFs::fsync(const RequestContext& ctx, InodeId ino, HandleId fh, bool datasync) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  co_return co_await fs(hd.side).fsync(ctx, hd.child, hd.child_fh, datasync);
}

Task<Status> DualFs::fallocate(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                               uint64_t length, uint32_t mode) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  if (hd.side == Side::b) co_return Errno{EBADF};
  co_return co_await fs(hd.side).fallocate(ctx, hd.child, hd.child_fh, offset, length, mode);
}

Task<Result<uint64_t>> DualFs::lseek(const RequestContext& ctx, InodeId ino, HandleId fh,
                                     uint64_t offset, uint32_t whence) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  co_return co_await fs(hd.side).lseek(ctx, hd.child, hd.child_fh, offset, whence);
}

Task<Result<size_t>> DualFs::copy_file_range(const RequestContext& ctx, InodeId ino_in,
                                             HandleId fh_in, uint64_t off_in, InodeId ino_out,
                                             HandleId fh_out, uint64_t off_out, uint64_t len,
                                             uint64_t flags) {
  Result<std::shared_ptr<Handle>> in = handle_of(fh_in, ino_in, false);
  if (!in) co_return Errno{in.error()};
  Result<std::shared_ptr<Handle>> out = handle_of(fh_out, ino_out, false);
  if (!out) co_return Errno{out.error()};
  const Handle& hi = **in;
  const Handle& ho = **out;
  if (ho.side == Side::b) co_return Errno{EBADF};
  // Across the two backends there is nothing to offload to; the kernel copies itself.
  if (hi.side != ho.side) co_return Errno{EXDEV};
  co_return co_await fs(hi.side).copy_file_range(ctx, hi.child, hi.child_fh, off_in, ho.child,
                                                 ho.child_fh, off_out, len, flags);
}

int DualFs::host_fd(InodeId ino, HandleId fh) const {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, false);
  if (!h) return -1;
  return fs((*h)->side).host_fd((*h)->child, (*h)->child_fh);
}

Task<Result<size_t>> DualFs::copy_from_host_fd(const RequestContext& ctx, int fd_in,
                                               uint64_t off_in, InodeId ino_out, HandleId fh_out,
                                               uint64_t off_out, uint64_t len) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh_out, ino_out, false);
  if (!h) co_return Errno{h.error()};
  const Handle& hd = **h;
  if (hd.side == Side::b) co_return Errno{EBADF};
  co_return co_await config_.a->copy_from_host_fd(ctx, fd_in, off_in, hd.child, hd.child_fh,
                                                  off_out, len);
}

}  // namespace sandfs::dualfs
