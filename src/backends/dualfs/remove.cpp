// unlink and rmdir. The A object goes; a B object of that name is whited out (whiteouts.hpp),
// before A's removal, so a failure in between leaves B hidden rather than resurrected. A merged
// directory is removable only when its merged listing is empty.
#include <sys/stat.h>

#include "backends/dualfs/dualfs.hpp"

namespace sandfs::dualfs {

namespace {

// Removes what A holds at `name` in A directory `dir`, if anything: an object a B object of that
// name hid (a policy that looks B up first), which would show once B's is whited out.
Task<Status> remove_shadowed(Filesystem& a, Whiteouts& whiteouts, const RequestContext& ctx,
                             InodeId dir, std::string_view name) {
  Result<Entry> there = co_await a.lookup(ctx, dir, name);
  if (!there) co_return there.error() == ENOENT ? ok_status() : Status(Errno{there.error()});
  if (there->ino == 0) co_return ok_status();
  const InodeId ino = there->ino;
  const bool is_dir = S_ISDIR(there->attr.mode);
  a.forget(ino, 1);
  if (!is_dir) co_return co_await a.unlink(ctx, dir, name);
  Status cleared = co_await whiteouts.clear(ino);
  if (!cleared) co_return cleared;
  Status removed = co_await a.rmdir(ctx, dir, name);
  if (removed) whiteouts.forget_dir(ino);
  co_return removed;
}

}  // namespace

Task<Status> DualFs::remove_name(const RequestContext& ctx, InodeId parent, std::string_view name,
                                 bool dir) {
  Result<NodePtr> p = node_of(parent);
  if (!p) co_return Errno{p.error()};
  if (int e = admit(dir ? OpKind::rmdir : OpKind::unlink, parent, name); e != 0) {
    co_return Errno{e};
  }
  Result<Found> f = co_await resolve(ctx, *p, name);
  if (!f) co_return Errno{f.error()};
  const NodePtr n = f->node;
  // The body runs with the reference on `n` held; the reference goes whatever it answers.
  auto body = [&]() -> Task<Status> {
    if (dir && !n->is_dir()) co_return Errno{ENOTDIR};
    if (!dir && n->is_dir()) co_return Errno{EISDIR};
    if (dir) {
      Result<bool> empty = co_await dir_is_empty(ctx, n);
      if (!empty) co_return Errno{empty.error()};
      if (!*empty) co_return Errno{ENOTEMPTY};
    }
    const InodeTable::View v = table_.view(*n);
    bool whiteout = v.b != 0;
    if (!whiteout) {
      Result<bool> b_has = co_await b_has_visible(ctx, *p, name);
      if (!b_has) co_return Errno{b_has.error()};
      whiteout = *b_has;
    }
    if (whiteout) {
      if (int e = may_hide_b(); e != 0) co_return Errno{e};
      if (v.a == 0) {
        const InodeId shadow_dir = table_.view(**p).a;
        if (shadow_dir != 0) {
          Status gone = co_await remove_shadowed(*config_.a, whiteouts_, ctx, shadow_dir, name);
          if (!gone) co_return gone;
        }
      }
      Result<InodeId> pa = co_await a_dir_of(*p);
      if (!pa) co_return Errno{pa.error()};
      Status added = co_await whiteouts_.add(*pa, name);
      if (!added) co_return added;
    }
    if (v.a != 0) {
      const InodeId pa = table_.view(**p).a;
      if (dir) {
        Status cleared = co_await whiteouts_.clear(v.a);
        if (!cleared) co_return cleared;
        Status removed = co_await config_.a->rmdir(ctx, pa, name);
        if (!removed) co_return removed;
        whiteouts_.forget_dir(v.a);
      } else {
        Status removed = co_await config_.a->unlink(ctx, pa, name);
        if (!removed) co_return removed;
      }
    }
    co_return ok_status();
  };
  Status status = co_await body();
  drop_ref(n);
  co_return status;
}

Task<Status> DualFs::unlink(const RequestContext& ctx, InodeId parent, std::string_view name) {
  co_return co_await remove_name(ctx, parent, name, false);
}

Task<Status> DualFs::rmdir(const RequestContext& ctx, InodeId parent, std::string_view name) {
  co_return co_await remove_name(ctx, parent, name, true);
}

}  // namespace sandfs::dualfs
