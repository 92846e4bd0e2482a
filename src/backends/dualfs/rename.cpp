// rename, in A.
//
// * A directory with a B side (B-only or merged) cannot be renamed, nor renamed over, nor
//   exchanged: EXDEV, as overlayfs answers without redirect_dir, so mv copies and deletes.
// * A B file (either name of an exchange) is copied up first, then renamed in A.
// * Afterwards B's object at the old name, if any still shows, is whited out (a copied-up file's
//   already is), and so is B's object at the new name: neither comes back.
// * RENAME_NOREPLACE sees both sides: a visible destination is EEXIST.
#include <linux/fs.h>
#include <sys/stat.h>

#include <optional>

#include "backends/dualfs/dualfs.hpp"

namespace sandfs::dualfs {

Task<Status> DualFs::rename(const RequestContext& ctx, InodeId parent, std::string_view name,
                            InodeId new_parent, std::string_view new_name, uint32_t flags) {
  if ((flags & ~static_cast<uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) {
    co_return Errno{EINVAL};
  }
  if ((flags & RENAME_NOREPLACE) != 0 && (flags & RENAME_EXCHANGE) != 0) co_return Errno{EINVAL};
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  Result<NodePtr> p = node_of(parent);
  if (!p) co_return Errno{p.error()};
  Result<NodePtr> q = node_of(new_parent);
  if (!q) co_return Errno{q.error()};
  OpInfo info;
  info.op = OpKind::rename;
  info.ino = parent;
  info.name = name;
  info.new_parent = new_parent;
  info.new_name = new_name;
  info.flags = flags;
  if (int e = admit(info); e != 0) co_return Errno{e};
  if (is_reserved(new_name)) co_return Errno{EPERM};

  Result<Found> src = co_await resolve(ctx, *p, name);
  if (!src) co_return Errno{src.error()};
  const NodePtr s = src->node;
  NodePtr d;
  Result<Found> dst = co_await resolve(ctx, *q, new_name);
  if (dst) {
    d = dst->node;
  } else if (dst.error() != ENOENT) {
    drop_ref(s);
    co_return Errno{dst.error()};
  }

  auto body = [&]() -> Task<Status> {
    if (d == s) co_return ok_status();  // two names of one file: nothing to do
    // A B directory stays where B has it: a read-only B refuses, otherwise mv copies.
    const int b_dir_error = may_hide_b() != 0 ? EROFS : EXDEV;
    if (s->is_dir() && table_.view(*s).b != 0) co_return Errno{b_dir_error};
    if (d) {
      if ((flags & RENAME_NOREPLACE) != 0) co_return Errno{EEXIST};
      if (d->is_dir() && table_.view(*d).b != 0) co_return Errno{b_dir_error};
      if (!exchange) {
        if (d->is_dir() && !s->is_dir()) co_return Errno{EISDIR};
        if (!d->is_dir() && s->is_dir()) co_return Errno{ENOTDIR};
        if (d->is_dir()) {
          Result<bool> empty = co_await dir_is_empty(ctx, d);
          if (!empty) co_return Errno{empty.error()};
          if (!*empty) co_return Errno{ENOTEMPTY};
          // An A-only directory may hold an opaque marker; A's rename needs it empty.
          Status cleared = co_await whiteouts_.clear(table_.view(*d).a);
          if (!cleared) co_return cleared;
        }
      }
    } else if (exchange) {
      co_return Errno{ENOENT};
    }
    Status up = co_await make_changeable(s, false);
    if (!up) co_return up;
    if (d && exchange) {
      Status dup = co_await make_changeable(d, false);
      if (!dup) co_return dup;
    }
    Result<InodeId> pa = co_await a_dir_of(*p);
    if (!pa) co_return Errno{pa.error()};
    Result<InodeId> qa = co_await a_dir_of(*q);
    if (!qa) co_return Errno{qa.error()};

    // Which B names would show once A's objects have moved. An exchange keeps both names, but a
    // copy-up hides B only while it is at its own name (whiteouts.hpp): where B shows a name, it
    // is whited out before the exchange.
    bool whiteout_old = false;
    bool whiteout_new = false;
    if (!exchange || may_hide_b() == 0) {
      Result<bool> old_b = co_await b_has_visible(ctx, *p, name);
      if (!old_b) co_return Errno{old_b.error()};
      whiteout_old = *old_b;
      Result<bool> new_b = co_await b_has_visible(ctx, *q, new_name);
      if (!new_b) co_return Errno{new_b.error()};
      whiteout_new = *new_b;
    }
    if (whiteout_old || whiteout_new) {
      if (int e = may_hide_b(); e != 0) co_return Errno{e};
    }
    if (whiteout_new && !exchange && d && !s->is_dir() && table_.view(*d).a == 0) {
      // B's object at the new name hid an A directory there (a policy that looks at B first):
      // A's rename cannot put a file over a directory, so that directory goes first.
      Result<Entry> shadow = co_await config_.a->lookup(ctx, *qa, new_name);
      if (!shadow && shadow.error() != ENOENT) co_return Errno{shadow.error()};
      if (shadow && shadow->ino != 0) {
        const InodeId shadow_ino = shadow->ino;
        const bool shadow_dir = S_ISDIR(shadow->attr.mode);
        config_.a->forget(shadow_ino, 1);
        if (shadow_dir) {
          Status cleared = co_await whiteouts_.clear(shadow_ino);
          if (!cleared) co_return cleared;
          Status removed = co_await config_.a->rmdir(ctx, *qa, new_name);
          if (!removed) co_return removed;
          whiteouts_.forget_dir(shadow_ino);
        }
      }
    }
    if (whiteout_new) {
      Status added = co_await whiteouts_.add(*qa, new_name);
      if (!added) co_return added;
    }
    if (exchange && whiteout_old) {
      Status added = co_await whiteouts_.add(*pa, name);
      if (!added) co_return added;
    }
    Status moved = co_await config_.a->rename(ctx, *pa, name, *qa, new_name, flags);
    if (!moved) co_return moved;
    if (whiteout_old && !exchange) {
      Status added = co_await whiteouts_.add(*pa, name);
      if (!added) co_return added;
    }
    table_.set_anchor(s, (*q)->ino, new_name);
    if (d && exchange) table_.set_anchor(d, (*p)->ino, name);
    co_return ok_status();
  };
  Status status = co_await body();
  drop_ref(s);
  if (d) drop_ref(d);
  co_return status;
}

}  // namespace sandfs::dualfs
