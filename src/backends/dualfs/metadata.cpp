// Changing an inode's metadata: setattr, setxattr, removexattr. Each lands in A, copying the
// node up (or promoting a directory) first.
#include "backends/dualfs/dualfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::dualfs {

Task<Result<AttrReply>> DualFs::setattr(const RequestContext& ctx, InodeId ino,
                                        const SetAttrIn& in) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::setattr, ino); e != 0) co_return Errno{e};
  if (table_.view(**n).a == 0) {
    // Truncation to zero needs none of B's data.
    const bool to_zero = (in.valid & fuse::FATTR_SIZE) != 0 && in.size == 0;
    Status up = co_await make_changeable(*n, to_zero);
    if (!up) co_return Errno{up.error()};
  }
  SetAttrIn child = in;
  child.fh.reset();
  if (in.fh) {
    // A handle opened on B before a copy-up cannot serve an A setattr; A's inode is used.
    Result<std::shared_ptr<Handle>> h = handle_of(*in.fh, ino, false);
    if (h && (*h)->side == Side::a) child.fh = (*h)->child_fh;
  }
  if (!child.fh) child.valid &= ~fuse::FATTR_FH;
  const InodeId a_ino = table_.view(**n).a;
  Result<AttrReply> r = co_await config_.a->setattr(ctx, a_ino, child);
  if (!r) co_return Errno{r.error()};
  co_return attr_reply(*n, r->attr);
}

Task<Status> DualFs::setxattr(const RequestContext& ctx, InodeId ino, std::string_view name,
                              std::span<const char> value, uint32_t flags) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::setxattr, ino, name); e != 0) co_return Errno{e};
  if (is_reserved_xattr(name)) co_return Errno{EPERM};  // DualFs's own (whiteouts.hpp)
  Status up = co_await make_changeable(*n, false);
  if (!up) co_return up;
  const InodeId a_ino = table_.view(**n).a;
  co_return co_await config_.a->setxattr(ctx, a_ino, name, value, flags);
}

Task<Status> DualFs::removexattr(const RequestContext& ctx, InodeId ino, std::string_view name) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::removexattr, ino, name); e != 0) co_return Errno{e};
  if (is_reserved_xattr(name)) co_return Errno{ENODATA};
  // Nothing to remove is not a reason to copy up.
  const InodeTable::View v = table_.view(**n);
  if (v.a == 0) {
    Result<XattrReply> there = co_await config_.b->getxattr(ctx, v.b, name, 0);
    if (!there) co_return Errno{there.error()};
  }
  Status up = co_await make_changeable(*n, false);
  if (!up) co_return up;
  const InodeId a_ino = table_.view(**n).a;
  co_return co_await config_.a->removexattr(ctx, a_ino, name);
}

}  // namespace sandfs::dualfs
