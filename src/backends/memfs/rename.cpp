// rename and rename2 (RENAME_NOREPLACE, RENAME_EXCHANGE).
//
// A rename touches up to four nodes: both directories, the source, and the target it replaces or
// swaps with. Any of them may sort before another in the global lock order (node.hpp), so the
// children are looked up first, then all four are locked in order and the lookups re-checked; a
// concurrent change in between just means another round. A cross-directory rename also holds
// rename_mu_, which freezes every directory's parent pointer, so the ancestor chains that answer
// the "into its own subtree" checks cannot change underneath it.
#include <stdio.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE

#include <algorithm>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "backends/memfs/memfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::memfs {

namespace {

// Type and emptiness rules for a plain rename over an existing target. Children locked.
Status check_replace(const Node& s, const Node& d) {
  if (s.is_dir() && !d.is_dir()) return Errno{ENOTDIR};
  if (!s.is_dir() && d.is_dir()) return Errno{EISDIR};
  if (d.is_dir() && !d.entries.empty()) return Errno{ENOTEMPTY};
  return ok_status();
}

// Performs an already checked rename. p1 and p2 may be the same directory; everything is locked.
// Allocation happens first (inserting the new name), so a bad_alloc leaves the tree unchanged.
void apply(Node& p1, std::string_view name, Node& p2, std::string_view new_name, Node& s, Node* d,
           bool exchange) {
  const bool cross = &p1 != &p2;
  const Timespec t = now();
  if (exchange) {
    DirEntry* a = p1.entries.find(name);
    DirEntry* b = p2.entries.find(new_name);
    std::swap(a->ino, b->ino);
    std::swap(a->dtype, b->dtype);
    if (cross) {
      if (s.is_dir()) s.parent.store(p2.ino, std::memory_order_relaxed);
      if (d->is_dir()) d->parent.store(p1.ino, std::memory_order_relaxed);
      // A directory moving one way and a non-directory the other shifts one ".." link.
      if (s.is_dir() && !d->is_dir()) {
        --p1.nlink;
        ++p2.nlink;
      } else if (!s.is_dir() && d->is_dir()) {
        ++p1.nlink;
        --p2.nlink;
      }
    }
    d->ctime = t;
  } else {
    if (d != nullptr) {
      DirEntry* b = p2.entries.find(new_name);
      b->ino = s.ino;
      b->dtype = dtype_of(s.type);
    } else {
      p2.entries.insert(new_name, s.ino, dtype_of(s.type));
    }
    p1.entries.erase(name);
    if (d != nullptr) {
      if (d->is_dir()) {
        d->nlink = 0;
        --p2.nlink;
      } else {
        --d->nlink;
      }
      d->ctime = t;
    }
    if (cross && s.is_dir()) {
      --p1.nlink;
      ++p2.nlink;
      s.parent.store(p2.ino, std::memory_order_relaxed);
    }
  }
  s.ctime = t;
  p1.mtime = p1.ctime = t;
  p2.mtime = p2.ctime = t;
}

}  // namespace

Task<Status> MemFs::rename(const RequestContext&, InodeId parent, std::string_view name,
                           InodeId new_parent, std::string_view new_name, uint32_t flags) {
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) co_return Errno{EINVAL};
  if ((flags & RENAME_NOREPLACE) != 0 && (flags & RENAME_EXCHANGE) != 0) co_return Errno{EINVAL};
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (int err = check_name(new_name); err != 0) co_return Errno{err};
  std::shared_ptr<Node> p1 = find_node(parent);
  std::shared_ptr<Node> p2 = find_node(new_parent);
  if (!p1 || !p2) co_return Errno{EBADF};
  if (!p1->is_dir() || !p2->is_dir()) co_return Errno{ENOTDIR};

  // Only a move between directories can change the tree's shape.
  std::unique_lock<std::mutex> tree_lock(rename_mu_, std::defer_lock);
  if (p1 != p2) tree_lock.lock();
  co_return rename_nodes(*p1, name, *p2, new_name, flags);
}

Status MemFs::rename_nodes(Node& p1, std::string_view name, Node& p2, std::string_view new_name,
                           uint32_t flags) {
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  const bool cross = &p1 != &p2;

  // Ancestor chains, each starting with the directory itself. The caller holds rename_mu_ when
  // the directories differ, so parent pointers are stable; a removed directory keeps its last one.
  auto chain = [this](InodeId id) {
    std::vector<InodeId> ids;
    for (;;) {
      ids.push_back(id);
      if (id == fuse::root_id) break;
      std::shared_ptr<Node> n = find_node(id);
      if (!n) break;
      const InodeId up = n->parent.load(std::memory_order_relaxed);
      if (up == id || up == 0) break;
      id = up;
    }
    return ids;
  };
  auto contains = [](const std::vector<InodeId>& ids, InodeId id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  const std::vector<InodeId> chain1 = cross ? chain(p1.ino) : std::vector<InodeId>{};
  const std::vector<InodeId> chain2 = cross ? chain(p2.ino) : std::vector<InodeId>{};

  for (;;) {
    // Find the two children, one directory at a time (no nested directory locks).
    InodeId s_ino = 0;
    InodeId d_ino = 0;
    {
      std::shared_lock lock(p1.mu);
      if (p1.dead) return Errno{EBADF};
      const DirEntry* e = p1.entries.find(name);
      if (e == nullptr) return Errno{ENOENT};
      s_ino = e->ino;
    }
    {
      std::shared_lock lock(p2.mu);
      if (p2.dead) return Errno{EBADF};
      if (const DirEntry* e = p2.entries.find(new_name); e != nullptr) d_ino = e->ino;
    }
    std::shared_ptr<Node> s = find_node(s_ino);
    std::shared_ptr<Node> d = d_ino != 0 ? find_node(d_ino) : nullptr;
    if (!s || (d_ino != 0 && !d)) continue;  // removed in between

    OrderedLocks locks{&p1, &p2, s.get(), d.get()};
    if (p1.dead || p2.dead) return Errno{EBADF};
    const DirEntry* src = p1.entries.find(name);
    if (src == nullptr) return Errno{ENOENT};
    const DirEntry* dst = p2.entries.find(new_name);
    if (src->ino != s_ino || (dst != nullptr ? dst->ino : 0) != d_ino) continue;

    if (p2.nlink == 0) return Errno{ENOENT};  // the target directory was removed
    if (exchange && dst == nullptr) return Errno{ENOENT};
    if ((flags & RENAME_NOREPLACE) != 0 && dst != nullptr) return Errno{EEXIST};
    // Same name, or two links of one inode: POSIX says do nothing and succeed.
    if (dst != nullptr && d_ino == s_ino) return ok_status();
    if (cross) {
      // A directory cannot move below itself; a target that is an ancestor of the source is not
      // empty (it contains the source), and cannot be swapped below itself either.
      if (contains(chain2, s_ino)) return Errno{EINVAL};
      if (dst != nullptr && contains(chain1, d_ino)) return Errno{exchange ? EINVAL : ENOTEMPTY};
    }
    if (!exchange && d) {
      if (Status st = check_replace(*s, *d); !st) return st;
    }
    apply(p1, name, p2, new_name, *s, d.get(), exchange);
    if (d && !exchange) evict_if_unused(*d);
    return ok_status();
  }
}

}  // namespace sandfs::memfs
