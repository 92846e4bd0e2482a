// Name resolution through the policy, and the read-only inode operations.
#include <sys/stat.h>

#include <unistd.h>
#include <cstring>

#include "backends/dualfs/dualfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::dualfs {

namespace {

struct SideHit {
  Side side;
  Entry entry;
};

bool is_dir_mode(uint32_t mode) {
  return S_ISDIR(mode);
}

// The caller may write an object with these attributes by its mode bits (supplementary groups
// are not known here: only the primary group counts).
bool may_write(const RequestContext& ctx, const Attr& attr) {
  if (ctx.uid == 0) return true;
  if (ctx.uid == attr.uid) return (attr.mode & S_IWUSR) != 0;
  if (ctx.gid == attr.gid) return (attr.mode & S_IWGRP) != 0;
  return (attr.mode & S_IWOTH) != 0;
}

}  // namespace

Task<Result<DualFs::Found>> DualFs::resolve(const RequestContext& ctx, const NodePtr& parent,
                                            std::string_view name) {
  if (!parent->is_dir()) co_return Errno{ENOTDIR};
  if (is_reserved(name) || name == "." || name == "..") co_return Errno{ENOENT};
  const InodeTable::View pv = table_.view(*parent);
  const SideOrder order = config_.policy->lookup_order();

  // B's name is hidden by a whiteout or an opaque A directory.
  bool b_hidden = false;
  if (pv.a != 0 && pv.b != 0 && order.contains(Side::b)) {
    Result<bool> hidden = co_await whiteouts_.hides(pv.a, name);
    if (!hidden) co_return Errno{hidden.error()};
    b_hidden = *hidden;
  }

  std::vector<SideHit> hits;
  std::vector<ChildRef> drop;
  for (uint8_t i = 0; i < order.count; ++i) {
    const Side s = order.at(i);
    const InodeId pino = pv.on(s);
    if (pino == 0 || (s == Side::b && b_hidden)) continue;
    // A non-directory found first hides the rest; a directory merges with later directories.
    if (!hits.empty() && !is_dir_mode(hits.front().entry.attr.mode)) break;
    Result<Entry> r = co_await fs(s).lookup(ctx, pino, name);
    if (!r) {
      if (r.error() == ENOENT) continue;
      give_back(drop);
      for (const SideHit& h : hits)
        fs(h.side).forget(h.entry.ino, 1);
      co_return Errno{r.error()};
    }
    if (r->ino == 0) continue;  // a negative entry
    if (!hits.empty()) {
      bool merge = is_dir_mode(r->attr.mode);
      if (merge) {
        // An opaque A directory takes nothing from B.
        const InodeId a_dir = s == Side::a ? r->ino : hits.front().entry.ino;
        Result<std::shared_ptr<const DirMarks>> marks = co_await whiteouts_.marks(a_dir);
        if (!marks) {
          fs(s).forget(r->ino, 1);
          for (const SideHit& h : hits)
            fs(h.side).forget(h.entry.ino, 1);
          co_return Errno{marks.error()};
        }
        merge = !(*marks)->opaque;
      }
      if (!merge) {
        fs(s).forget(r->ino, 1);
        continue;
      }
    }
    hits.push_back({s, *r});
  }
  if (hits.empty()) co_return Errno{ENOENT};

  Binding binding;
  binding.type = hits.front().entry.attr.mode & S_IFMT;
  Attr attr = hits.front().entry.attr;
  for (const SideHit& h : hits) {
    if (h.side == Side::a) {
      binding.a = h.entry.ino;
      attr = h.entry.attr;  // A's attributes win for a merged directory
    } else {
      binding.b = h.entry.ino;
    }
  }
  // B hard links: one node per name, so that copy-up breaks the link at the name written through
  // (inode_table.hpp).
  binding.by_name = binding.a == 0 && !is_dir_mode(binding.type) && attr.nlink > 1;
  NodePtr n = table_.bind(binding, parent->ino, name, drop);
  give_back(drop);
  co_return Found{std::move(n), attr};
}

Task<Result<bool>> DualFs::b_has_visible(const RequestContext& ctx, const NodePtr& parent,
                                         std::string_view name) {
  const InodeTable::View pv = table_.view(*parent);
  if (pv.b == 0 || !config_.policy->lookup_order().contains(Side::b)) co_return false;
  if (pv.a != 0) {
    // A copy-up at `name` does not count: this asks what shows once A's object is gone.
    Result<bool> hidden = co_await whiteouts_.whited_out(pv.a, name);
    if (!hidden) co_return Errno{hidden.error()};
    if (*hidden) co_return false;
  }
  Result<Entry> r = co_await config_.b->lookup(ctx, pv.b, name);
  if (!r) {
    if (r.error() == ENOENT) co_return false;
    co_return Errno{r.error()};
  }
  if (r->ino == 0) co_return false;
  config_.b->forget(r->ino, 1);
  co_return true;
}

Task<Result<Entry>> DualFs::lookup(const RequestContext& ctx, InodeId parent,
                                   std::string_view name) {
  Result<NodePtr> p = node_of(parent);
  if (!p) co_return Errno{p.error()};
  if (int e = admit(OpKind::lookup, parent, name); e != 0) co_return Errno{e};
  Result<Found> f = co_await resolve(ctx, *p, name);
  if (!f) {
    if (f.error() == ENOENT && entry_timeout_.count() > 0) {
      Entry negative;
      negative.entry_timeout = entry_timeout_;
      co_return negative;
    }
    co_return Errno{f.error()};
  }
  co_return entry_for(f->node, f->attr);
}

Task<Result<AttrReply>> DualFs::getattr(const RequestContext& ctx, InodeId ino,
                                        std::optional<HandleId>) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::getattr, ino); e != 0) co_return Errno{e};
  const InodeTable::View v = table_.view(**n);
  const Side s = active_side(v);
  const InodeId child = v.on(s);
  if (child == 0) co_return Errno{ENOENT};
  Result<AttrReply> r = co_await fs(s).getattr(ctx, child, std::nullopt);
  if (!r) co_return Errno{r.error()};
  co_return attr_reply(*n, r->attr);
}

Task<Result<std::string>> DualFs::readlink(const RequestContext& ctx, InodeId ino) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::readlink, ino); e != 0) co_return Errno{e};
  const InodeTable::View v = table_.view(**n);
  const Side s = active_side(v);
  co_return co_await fs(s).readlink(ctx, v.on(s));
}

Task<Result<StatFs>> DualFs::statfs(const RequestContext& ctx, InodeId ino) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::statfs, ino); e != 0) co_return Errno{e};
  co_return co_await config_.a->statfs(ctx, fuse::root_id);
}

Task<Status> DualFs::access(const RequestContext& ctx, InodeId ino, uint32_t mask) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::access, ino); e != 0) co_return Errno{e};
  const InodeTable::View v = table_.view(**n);
  const Side s = active_side(v);
  if (s == Side::a || (mask & W_OK) == 0) co_return co_await fs(s).access(ctx, v.on(s), mask);
  // Writing a B object never writes B: it reaches a copy in A (which keeps B's owner and mode),
  // or is refused when the policy keeps B read-only. So a read-only B's EROFS is not the answer.
  if (!(*n)->is_dir() && !config_.policy->copy_up()) co_return Errno{EROFS};
  Status on_b = co_await fs(s).access(ctx, v.b, mask);
  if (on_b || on_b.error() != EROFS) co_return on_b;
  const uint32_t rest = mask & ~static_cast<uint32_t>(W_OK);
  if (rest != 0) {
    Status others = co_await fs(s).access(ctx, v.b, rest);
    if (!others) co_return others;
  }
  Result<AttrReply> a = co_await fs(s).getattr(ctx, v.b, std::nullopt);
  if (!a) co_return Errno{a.error()};
  co_return may_write(ctx, a->attr) ? ok_status() : Status(Errno{EACCES});
}

Task<Result<XattrReply>> DualFs::getxattr(const RequestContext& ctx, InodeId ino,
                                          std::string_view name, uint32_t size) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::getxattr, ino, name); e != 0) co_return Errno{e};
  if (is_reserved_xattr(name)) co_return Errno{ENODATA};  // DualFs's own (whiteouts.hpp)
  const InodeTable::View v = table_.view(**n);
  const Side s = active_side(v);
  co_return co_await fs(s).getxattr(ctx, v.on(s), name, size);
}

Task<Result<XattrReply>> DualFs::listxattr(const RequestContext& ctx, InodeId ino, uint32_t size) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (int e = admit(OpKind::listxattr, ino); e != 0) co_return Errno{e};
  const InodeTable::View v = table_.view(**n);
  const Side s = active_side(v);
  Filesystem& child = fs(s);
  // The child's whole list, without DualFs's own names (whiteouts.hpp); the sizes are the
  // filtered list's. A list that grows between the two calls is asked for again.
  for (int attempt = 0;; ++attempt) {
    Result<XattrReply> sized = co_await child.listxattr(ctx, v.on(s), 0);
    if (!sized) co_return Errno{sized.error()};
    if (sized->size == 0) co_return XattrReply{};
    Result<XattrReply> full = co_await child.listxattr(ctx, v.on(s), sized->size);
    if (!full) {
      if (full.error() == ERANGE && attempt < 3) continue;
      co_return Errno{full.error()};
    }
    XattrReply out;
    const std::vector<char>& names = full->data;
    size_t pos = 0;
    while (pos < names.size()) {
      const size_t len = ::strnlen(names.data() + pos, names.size() - pos);
      const std::string_view one(names.data() + pos, len);
      if (!one.empty() && !is_reserved_xattr(one)) {
        out.data.insert(out.data.end(), one.begin(), one.end());
        out.data.push_back('\0');
      }
      pos += len + 1;
    }
    out.size = static_cast<uint32_t>(out.data.size());
    if (size == 0) {
      out.data.clear();
      co_return out;
    }
    if (size < out.size) co_return Errno{ERANGE};
    co_return out;
  }
}

}  // namespace sandfs::dualfs
