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
  // The parent lock keeps the child linked (so not evictable) while the reference is taken; the
  // child's shared lock gives a consistent attribute snapshot.
  std::shared_lock child_lock(child->mu);
  child->lookup_refs.fetch_add(1, std::memory_order_acq_rel);
  co_return entry_of(*child);
}

void MemFs::forget(InodeId ino, uint64_t nlookup) {
  if (ino == fuse::root_id) return;
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) return;
  std::unique_lock lock(n->mu);
  // The exclusive lock shuts out concurrent fetch_adds, so load-then-store is exact here.
  const uint64_t refs = n->lookup_refs.load(std::memory_order_acquire);
  n->lookup_refs.store(refs > nlookup ? refs - nlookup : 0, std::memory_order_release);
  evict_if_unused(*n);
}

}  // namespace sandfs::memfs
