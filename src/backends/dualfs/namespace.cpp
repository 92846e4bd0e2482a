// Creating names: mknod, mkdir, symlink, link, create. Always in A, in the A side of the parent
// (promoted first); a name visible through the policy is EEXIST, whichever side it is on.
#include <fcntl.h>
#include <sys/stat.h>

#include "backends/dualfs/dualfs.hpp"

namespace sandfs::dualfs {

Task<Result<InodeId>> DualFs::prepare_new(const RequestContext& ctx, const NodePtr& parent,
                                          std::string_view name) {
  if (is_reserved(name)) co_return Errno{EPERM};
  if (!parent->is_dir()) co_return Errno{ENOTDIR};
  Result<Found> existing = co_await resolve(ctx, parent, name);
  if (existing) {
    drop_ref(existing->node);
    co_return Errno{EEXIST};
  }
  if (existing.error() != ENOENT) co_return Errno{existing.error()};
  co_return co_await a_dir_of(parent);
}

Entry DualFs::bind_new_a(const NodePtr& parent, std::string_view name, const Entry& child) {
  Binding binding;
  binding.type = child.attr.mode & S_IFMT;
  binding.a = child.ino;
  std::vector<ChildRef> drop;
  NodePtr n = table_.bind(binding, parent->ino, name, drop);
  give_back(drop);
  return entry_for(n, child.attr);
}

Task<Result<Entry>> DualFs::make_in_a(const RequestContext& ctx, InodeId parent,
                                      std::string_view name, uint32_t mode, uint32_t rdev,
                                      uint32_t umask, std::string_view target, OpKind op) {
  Result<NodePtr> p = node_of(parent);
  if (!p) co_return Errno{p.error()};
  if (int e = admit(op, parent, name); e != 0) co_return Errno{e};
  Result<InodeId> pa = co_await prepare_new(ctx, *p, name);
  if (!pa) co_return Errno{pa.error()};
  Result<Entry> made = Errno{EINVAL};
  if (op == OpKind::mkdir) {
    made = co_await config_.a->mkdir(ctx, *pa, name, mode, umask);
  } else if (op == OpKind::symlink) {
    made = co_await config_.a->symlink(ctx, *pa, name, target);
  } else {
    made = co_await config_.a->mknod(ctx, *pa, name, mode, rdev, umask);
  }
  if (!made) co_return Errno{made.error()};
  if (op == OpKind::mkdir) {
    // A directory in place of a whited-out B name must not take B's old entries.
    Result<std::shared_ptr<const DirMarks>> marks = co_await whiteouts_.marks(*pa);
    if (marks && (*marks)->names.count(name) != 0) {
      Status opaque = co_await whiteouts_.set_opaque(made->ino);
      if (!opaque) {
        config_.a->forget(made->ino, 1);
        Status undo = co_await config_.a->rmdir(ctx, *pa, name);
        (void)undo;
        co_return Errno{opaque.error()};
      }
    }
  }
  co_return bind_new_a(*p, name, *made);
}

Task<Result<Entry>> DualFs::mknod(const RequestContext& ctx, InodeId parent, std::string_view name,
                                  uint32_t mode, uint32_t rdev, uint32_t umask) {
  co_return co_await make_in_a(ctx, parent, name, mode, rdev, umask, {}, OpKind::mknod);
}

Task<Result<Entry>> DualFs::mkdir(const RequestContext& ctx, InodeId parent, std::string_view name,
                                  uint32_t mode, uint32_t umask) {
  co_return co_await make_in_a(ctx, parent, name, mode, 0, umask, {}, OpKind::mkdir);
}

Task<Result<Entry>> DualFs::symlink(const RequestContext& ctx, InodeId parent,
                                    std::string_view name, std::string_view target) {
  co_return co_await make_in_a(ctx, parent, name, 0, 0, 0, target, OpKind::symlink);
}

Task<Result<Entry>> DualFs::link(const RequestContext& ctx, InodeId ino, InodeId new_parent,
                                 std::string_view new_name) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  Result<NodePtr> p = node_of(new_parent);
  if (!p) co_return Errno{p.error()};
  if ((*n)->is_dir()) co_return Errno{EPERM};
  OpInfo info;
  info.op = OpKind::link;
  info.ino = ino;
  info.new_parent = new_parent;
  info.new_name = new_name;
  info.source = ino;
  if (int e = admit(info); e != 0) co_return Errno{e};
  // Linking a B file needs a copy of it in A.
  if (table_.view(**n).a == 0) {
    if (int e = may_hide_b(); e != 0) co_return Errno{e};
  }
  Result<InodeId> pa = co_await prepare_new(ctx, *p, new_name);
  if (!pa) co_return Errno{pa.error()};
  Status up = co_await make_changeable(*n, false);
  if (!up) co_return Errno{up.error()};
  const InodeId a_ino = table_.view(**n).a;
  Result<Entry> linked = co_await config_.a->link(ctx, a_ino, *pa, new_name);
  if (!linked) co_return Errno{linked.error()};
  co_return bind_new_a(*p, new_name, *linked);
}

Task<Result<CreateReply>> DualFs::create(const RequestContext& ctx, InodeId parent,
                                         std::string_view name, uint32_t mode, uint32_t flags,
                                         uint32_t umask, bool kill_suidgid) {
  Result<NodePtr> p = node_of(parent);
  if (!p) co_return Errno{p.error()};
  if (int e = admit(OpKind::create, parent, name, flags, true); e != 0) co_return Errno{e};
  if (is_reserved(name)) co_return Errno{EPERM};
  if (!(*p)->is_dir()) co_return Errno{ENOTDIR};
  Result<Found> existing = co_await resolve(ctx, *p, name);
  if (existing) {
    // The kernel believed the name missing; someone made it meanwhile. O_EXCL: EEXIST, else
    // open what is there, as open(2) would.
    const NodePtr n = existing->node;
    if ((flags & O_EXCL) != 0 || n->is_dir()) {
      drop_ref(n);
      co_return Errno{n->is_dir() ? EISDIR : EEXIST};
    }
    const uint32_t open_flags = flags & ~static_cast<uint32_t>(O_CREAT | O_EXCL);
    Result<OpenReply> opened = co_await open_node(ctx, n, open_flags, kill_suidgid);
    if (!opened) {
      drop_ref(n);
      co_return Errno{opened.error()};
    }
    Attr attr = existing->attr;
    Result<AttrReply> fresh = co_await getattr(ctx, n->ino, std::nullopt);
    if (fresh) attr = fresh->attr;
    co_return CreateReply{entry_for(n, attr), *opened};
  }
  if (existing.error() != ENOENT) co_return Errno{existing.error()};
  Result<InodeId> pa = co_await a_dir_of(*p);
  if (!pa) co_return Errno{pa.error()};
  Result<CreateReply> made =
      co_await config_.a->create(ctx, *pa, name, mode, flags, umask, kill_suidgid);
  if (!made) co_return Errno{made.error()};
  const Entry entry = bind_new_a(*p, name, made->entry);
  auto h = std::make_shared<Handle>();
  h->node = table_.find(entry.ino);
  h->side = Side::a;
  h->child = made->entry.ino;
  h->child_fh = made->open.fh;
  if (!h->node) co_return Errno{EIO};
  const HandleId fh = add_handle(std::move(h));
  co_return CreateReply{entry, OpenReply{fh, cache_open_flags(config_.cache, false)}};
}

}  // namespace sandfs::dualfs
