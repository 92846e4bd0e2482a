// opendir, readdir, readdirplus, releasedir, fsyncdir over merged snapshots (merged_dir.hpp).
#include "backends/dualfs/merged_dir.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <unordered_set>

#include "backends/dualfs/child_listing.hpp"
#include "backends/dualfs/dualfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::dualfs {

Task<Result<std::shared_ptr<DirSnapshot>>> DualFs::snapshot(const RequestContext& ctx,
                                                            const NodePtr& dir) {
  const InodeTable::View v = table_.view(*dir);
  auto snap = std::make_shared<DirSnapshot>();
  const InodeId up = dir->ino == fuse::root_id || v.parent == 0 ? dir->ino : v.parent;
  snap->items.push_back({".", dir->ino, DT_DIR});
  snap->items.push_back({"..", up, DT_DIR});

  std::shared_ptr<const DirMarks> marks;
  if (v.a != 0 && v.b != 0) {
    Result<std::shared_ptr<const DirMarks>> m = co_await whiteouts_.marks(v.a);
    if (!m) co_return Errno{m.error()};
    marks = *m;
  }
  const SideOrder order = config_.policy->lookup_order();
  std::unordered_set<std::string> seen;
  for (uint8_t i = 0; i < order.count; ++i) {
    const Side s = order.at(i);
    const InodeId child = v.on(s);
    if (child == 0) continue;
    if (s == Side::b && marks && marks->opaque) continue;
    Result<std::vector<ChildDirEntry>> listing = co_await list_child_dir(fs(s), ctx, child);
    if (!listing) co_return Errno{listing.error()};
    for (ChildDirEntry& e : *listing) {
      if (is_reserved(e.name)) continue;
      if (s == Side::b && marks) {
        if (marks->whited_out(e.name) || marks->copied.count(e.name) != 0) continue;
        if (marks->unchecked_candidate(e.name)) {
          // A name A also has: hidden when A's object is a copy-up (checked once per name).
          Result<bool> hidden = co_await whiteouts_.hides(v.a, e.name);
          if (!hidden) co_return Errno{hidden.error()};
          if (*hidden) continue;
        }
      }
      if (!seen.insert(e.name).second) continue;
      const InodeId ino = table_.ino_for_listing(s, e.ino);
      snap->items.push_back({std::move(e.name), ino, e.dtype});
    }
  }
  co_return snap;
}

Task<Result<bool>> DualFs::dir_is_empty(const RequestContext& ctx, const NodePtr& dir) {
  Result<std::shared_ptr<DirSnapshot>> snap = co_await snapshot(ctx, dir);
  if (!snap) co_return Errno{snap.error()};
  co_return (*snap)->items.size() <= 2;
}

Task<Result<OpenReply>> DualFs::opendir(const RequestContext& ctx, InodeId ino, uint32_t) {
  Result<NodePtr> n = node_of(ino);
  if (!n) co_return Errno{n.error()};
  if (!(*n)->is_dir()) co_return Errno{ENOTDIR};
  if (int e = admit(OpKind::opendir, ino); e != 0) co_return Errno{e};
  Result<std::shared_ptr<DirSnapshot>> snap = co_await snapshot(ctx, *n);
  if (!snap) co_return Errno{snap.error()};
  auto h = std::make_shared<Handle>();
  h->node = *n;
  h->dir = true;
  h->listing = std::move(*snap);
  const HandleId fh = add_handle(std::move(h));
  co_return OpenReply{fh, cache_open_flags(config_.cache, true)};
}

Task<Status> DualFs::readdir(const RequestContext& ctx, InodeId ino, HandleId fh, uint64_t offset,
                             DirSink& sink) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  DirSnapshot& snap = *(*h)->listing;
  if (offset == 0) {
    bool served = false;
    {
      std::lock_guard lock(snap.mu);
      served = snap.served;
    }
    if (served) {
      Result<std::shared_ptr<DirSnapshot>> fresh = co_await snapshot(ctx, (*h)->node);
      if (!fresh) co_return Errno{fresh.error()};
      std::lock_guard lock(snap.mu);
      snap.items = std::move((*fresh)->items);
      snap.served = false;
    }
  }
  std::lock_guard lock(snap.mu);
  snap.served = true;
  for (uint64_t i = offset; i < snap.items.size(); ++i) {
    const DirItem& item = snap.items[i];
    if (!sink.add(item.name, item.ino, item.dtype, i + 1)) break;
  }
  co_return ok_status();
}

Task<Status> DualFs::readdirplus(const RequestContext& ctx, InodeId ino, HandleId fh,
                                 uint64_t offset, DirPlusSink& sink) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  const NodePtr dir = (*h)->node;
  DirSnapshot& snap = *(*h)->listing;
  if (offset == 0) {
    bool served = false;
    {
      std::lock_guard lock(snap.mu);
      served = snap.served;
    }
    if (served) {
      Result<std::shared_ptr<DirSnapshot>> fresh = co_await snapshot(ctx, dir);
      if (!fresh) co_return Errno{fresh.error()};
      std::lock_guard lock(snap.mu);
      snap.items = std::move((*fresh)->items);
      snap.served = false;
    }
  }
  std::vector<DirItem> items;
  {
    std::lock_guard lock(snap.mu);
    snap.served = true;
    if (offset < snap.items.size()) items.assign(snap.items.begin() + offset, snap.items.end());
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const DirItem& item = items[i];
    const uint64_t next = offset + i + 1;
    if (item.name == "." || item.name == "..") {
      Entry e;
      e.ino = item.ino;
      if (!sink.add(item.name, e, DT_DIR, next)) break;
      continue;
    }
    Result<Found> f = co_await resolve(ctx, dir, item.name);
    if (!f) continue;  // gone since the snapshot
    const Entry e = entry_for(f->node, f->attr);
    if (!sink.add(item.name, e, (f->attr.mode & S_IFMT) >> 12, next)) {
      drop_ref(f->node);
      break;
    }
  }
  co_return ok_status();
}

Task<Status> DualFs::releasedir(const RequestContext&, InodeId ino, HandleId fh) {
  if (!take_handle(fh, ino, true)) co_return Errno{EBADF};
  co_return ok_status();
}

Task<Status> DualFs::fsyncdir(const RequestContext&, InodeId ino, HandleId fh, bool) {
  Result<std::shared_ptr<Handle>> h = handle_of(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  co_return ok_status();
}

}  // namespace sandfs::dualfs
