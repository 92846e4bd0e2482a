// Directory handles and listings: opendir, readdir, readdirplus, releasedir, fsyncdir.
//
// Offsets are the per-directory cookies of dir_entries.hpp ("." is 1, ".." is 2), so a listing
// resumed at any offset the kernel was given continues after that entry in O(log n), whatever
// was created or removed in between; no per-handle snapshot is kept.
#include <dirent.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "backends/memfs/memfs.hpp"

namespace sandfs::memfs {

namespace {

constexpr uint64_t dot_offset = 1;
constexpr uint64_t dotdot_offset = 2;
// Entries prepared per round of readdirplus; a kernel reply buffer holds a few dozen.
constexpr size_t readdirplus_batch = 32;

}  // namespace

Task<Result<OpenReply>> MemFs::opendir(const RequestContext&, InodeId ino, uint32_t flags) {
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  if (!n->is_dir()) co_return Errno{ENOTDIR};
  std::unique_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  const HandleId fh = next_fh_.fetch_add(1, std::memory_order_relaxed);
  handles_.insert(fh, std::make_shared<Handle>(Handle{n, flags, true}));
  ++n->open_handles;
  co_return OpenReply{fh, open_reply_flags(true)};
}

Task<Status> MemFs::readdir(const RequestContext&, InodeId ino, HandleId fh, uint64_t offset,
                            DirSink& sink) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  const Node& dir = *(*h)->node;
  std::shared_lock lock(dir.mu);
  // A removed directory lists nothing, not even "." and "..", as on Linux.
  if (dir.nlink == 0) co_return ok_status();
  if (offset < dot_offset && !sink.add(".", dir.ino, DT_DIR, dot_offset)) co_return ok_status();
  if (offset < dotdot_offset &&
      !sink.add("..", dir.parent.load(std::memory_order_relaxed), DT_DIR, dotdot_offset)) {
    co_return ok_status();
  }
  dir.entries.for_each_after(std::max(offset, dotdot_offset),
                             [&](std::string_view name, const DirEntry& e) {
                               return sink.add(name, e.ino, e.dtype, e.cookie);
                             });
  co_return ok_status();
}

Task<Status> MemFs::readdirplus(const RequestContext&, InodeId ino, HandleId fh, uint64_t offset,
                                DirPlusSink& sink) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  const Node& dir = *(*h)->node;
  std::shared_lock lock(dir.mu);
  if (dir.nlink == 0) co_return ok_status();
  // "." and ".." carry only their inode id: the kernel takes no reference for them.
  if (offset < dot_offset) {
    Entry dot;
    dot.ino = dir.ino;
    if (!sink.add(".", dot, DT_DIR, dot_offset)) co_return ok_status();
  }
  if (offset < dotdot_offset) {
    Entry dotdot;
    dotdot.ino = dir.parent.load(std::memory_order_relaxed);
    if (!sink.add("..", dotdot, DT_DIR, dotdot_offset)) co_return ok_status();
  }
  lock.unlock();

  // Entries go out in batches. Under the directory lock each entry of a batch gets its lookup
  // reference (the lock keeps it linked, so that is safe); the attributes are read afterwards
  // under the child's own lock, so no two directory locks are ever nested. References of entries
  // the sink turns away are given back.
  struct Pending {
    std::string name;
    uint32_t dtype;
    uint64_t cookie;
    std::shared_ptr<Node> node;
  };
  std::vector<Pending> batch;
  batch.reserve(readdirplus_batch);
  uint64_t pos = std::max(offset, dotdot_offset);
  for (;;) {
    batch.clear();
    {
      std::shared_lock relock(dir.mu);
      if (dir.nlink == 0) co_return ok_status();
      dir.entries.for_each_after(pos, [&](std::string_view name, const DirEntry& e) {
        std::shared_ptr<Node> child = find_node(e.ino);
        if (!child) return true;  // cannot happen: linked nodes stay in the table
        batch.push_back({std::string(name), e.dtype, e.cookie, child});
        child->lookup_refs.fetch_add(1, std::memory_order_acq_rel);
        return batch.size() < readdirplus_batch;
      });
    }
    if (batch.empty()) co_return ok_status();
    for (size_t i = 0; i < batch.size(); ++i) {
      Entry entry;
      {
        std::shared_lock child_lock(batch[i].node->mu);
        entry = entry_of(*batch[i].node);
      }
      if (!sink.add(batch[i].name, entry, batch[i].dtype, batch[i].cookie)) {
        for (size_t j = i; j < batch.size(); ++j)
          drop_lookup_refs(*batch[j].node, 1);
        co_return ok_status();
      }
    }
    pos = batch.back().cookie;
  }
}

Task<Status> MemFs::releasedir(const RequestContext&, InodeId ino, HandleId fh) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  if (!handles_.erase(fh)) co_return Errno{EBADF};
  Node& n = *(*h)->node;
  std::unique_lock lock(n.mu);
  --n.open_handles;
  evict_if_unused(n);
  co_return ok_status();
}

Task<Status> MemFs::fsyncdir(const RequestContext&, InodeId ino, HandleId fh, bool) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, true);
  if (!h) co_return Errno{h.error()};
  co_return ok_status();
}

}  // namespace sandfs::memfs
