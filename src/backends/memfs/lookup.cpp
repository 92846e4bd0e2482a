// lookup and forget: the lookup-count protocol.
#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::memfs {

using namespace std::chrono_literals;

Task<Result<Entry>> MemFs::lookup(const RequestContext&, InodeId parent, std::string_view name) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  std::shared_ptr<Node> dir = find_node(parent);
  if (!dir) co_return Errno{EBADF};
  if (!dir->is_dir()) co_return Errno{ENOTDIR};

  std::shared_lock dir_lock(dir->mu);
  if (dir->dead) co_return Errno{EBADF};
  const DirEntry* de = dir->entries.find(name);
  if (de == nullptr) {
    if (entry_timeout_ > 0ns) {
      Entry negative;
      negative.entry_timeout = entry_timeout_;
      co_return negative;
    }
    co_return Errno{ENOENT};
  }
  std::shared_ptr<Node> child = find_node(de->ino);
  if (!child) co_return Errno{EIO};  // a linked node is always in the table
  // The reference is taken under the parent's lock, which keeps the child linked and so not
  // evictable; with it held, the child's attributes can be read after letting the parent go, so
  // the two directory locks are never nested.
  child->lookup_refs.fetch_add(1, std::memory_order_acq_rel);
  dir_lock.unlock();
  std::shared_lock child_lock(child->mu);
  co_return entry_of(*child);
}

void MemFs::forget(InodeId ino, uint64_t nlookup) {
  if (ino == fuse::root_id) return;
  std::shared_ptr<Node> n = find_node(ino);
  if (n) drop_lookup_refs(*n, nlookup);
}

void MemFs::drop_lookup_refs(Node& n, uint64_t count) {
  std::unique_lock lock(n.mu);
  // Lookups may add references concurrently under a parent's lock: subtract with a CAS, clamped
  // at zero (a guest may forget more than it was given).
  uint64_t refs = n.lookup_refs.load(std::memory_order_acquire);
  while (!n.lookup_refs.compare_exchange_weak(refs, refs > count ? refs - count : 0,
                                              std::memory_order_acq_rel)) {
  }
  evict_if_unused(n);
}

}  // namespace sandfs::memfs
