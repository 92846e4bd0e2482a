// rename and rename2 (RENAME_NOREPLACE, RENAME_EXCHANGE).
//
// Locking follows node.hpp. A same-directory rename cannot change the tree's shape, so it takes
// only the directory and then the two children. A cross-directory rename first takes rename_mu_,
// which freezes every directory's parent pointer; it can then tell whether one directory is an
// ancestor of the other and lock the ancestor first (or, for unrelated directories, the lower id
// first), exactly the order lookups and removals use going down the tree. The same ancestor
// chains answer the "into its own subtree" checks.
#include <stdio.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "backends/memfs/memfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::memfs {

namespace {

using NodeLock = std::unique_lock<std::shared_mutex>;

// Locks the source and the (optional) target child by ascending id.
std::pair<NodeLock, NodeLock> lock_children(Node& s, Node* d) {
  if (d == nullptr) return {NodeLock(s.mu), NodeLock()};
  if (d->ino < s.ino) {
    NodeLock first(d->mu);
    return {NodeLock(s.mu), std::move(first)};
  }
  NodeLock first(s.mu);
  return {std::move(first), NodeLock(d->mu)};
}

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
  if (parent == new_parent) co_return rename_same_dir(parent, name, new_name, flags);
  co_return rename_cross_dir(parent, name, new_parent, new_name, flags);
}

Status MemFs::rename_same_dir(InodeId parent, std::string_view name, std::string_view new_name,
                              uint32_t flags) {
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  std::shared_ptr<Node> dir = find_node(parent);
  if (!dir) return Errno{EBADF};
  if (!dir->is_dir()) return Errno{ENOTDIR};

  NodeLock dir_lock(dir->mu);
  if (dir->dead) return Errno{EBADF};
  const DirEntry* src = dir->entries.find(name);
  if (src == nullptr) return Errno{ENOENT};
  const DirEntry* dst = dir->entries.find(new_name);
  if (exchange && dst == nullptr) return Errno{ENOENT};
  if ((flags & RENAME_NOREPLACE) != 0 && dst != nullptr) return Errno{EEXIST};
  // Same name, or two links of one inode: POSIX says do nothing and succeed.
  if (name == new_name || (dst != nullptr && dst->ino == src->ino)) return ok_status();

  std::shared_ptr<Node> s = find_node(src->ino);
  std::shared_ptr<Node> d = dst != nullptr ? find_node(dst->ino) : nullptr;
  if (!s || (dst != nullptr && !d)) return Errno{EIO};
  auto locks = lock_children(*s, d.get());
  if (!exchange && d) {
    if (Status st = check_replace(*s, *d); !st) return st;
  }
  apply(*dir, name, *dir, new_name, *s, d.get(), exchange);
  if (d && !exchange) evict_if_unused(*d);
  return ok_status();
}

Status MemFs::rename_cross_dir(InodeId parent, std::string_view name, InodeId new_parent,
                               std::string_view new_name, uint32_t flags) {
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  std::shared_ptr<Node> p1 = find_node(parent);
  std::shared_ptr<Node> p2 = find_node(new_parent);
  if (!p1 || !p2) return Errno{EBADF};
  if (!p1->is_dir() || !p2->is_dir()) return Errno{ENOTDIR};

  std::lock_guard tree_lock(rename_mu_);
  // Ancestor chains, each starting with the directory itself. Parent pointers only change under
  // rename_mu_, which we hold, so they are stable; removed directories keep their last parent.
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
  const std::vector<InodeId> chain1 = chain(p1->ino);
  const std::vector<InodeId> chain2 = chain(p2->ino);
  auto contains = [](const std::vector<InodeId>& ids, InodeId id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };

  Node* first = p1.get();
  Node* second = p2.get();
  if (contains(chain1, p2->ino) || (!contains(chain2, p1->ino) && p2->ino < p1->ino)) {
    std::swap(first, second);
  }
  NodeLock first_lock(first->mu);
  NodeLock second_lock(second->mu);
  if (p1->dead || p2->dead) return Errno{EBADF};
  if (p2->nlink == 0) return Errno{ENOENT};

  const DirEntry* src = p1->entries.find(name);
  if (src == nullptr) return Errno{ENOENT};
  const DirEntry* dst = p2->entries.find(new_name);
  if (exchange && dst == nullptr) return Errno{ENOENT};
  if ((flags & RENAME_NOREPLACE) != 0 && dst != nullptr) return Errno{EEXIST};
  if (dst != nullptr && dst->ino == src->ino) return ok_status();
  // A directory cannot move below itself; a target that is an ancestor of the source is not
  // empty (it contains the source), and cannot be swapped below itself either.
  if (contains(chain2, src->ino)) return Errno{EINVAL};
  if (dst != nullptr && contains(chain1, dst->ino)) return Errno{exchange ? EINVAL : ENOTEMPTY};

  std::shared_ptr<Node> s = find_node(src->ino);
  std::shared_ptr<Node> d = dst != nullptr ? find_node(dst->ino) : nullptr;
  if (!s || (dst != nullptr && !d)) return Errno{EIO};
  auto locks = lock_children(*s, d.get());
  if (!exchange && d) {
    if (Status st = check_replace(*s, *d); !st) return st;
  }
  apply(*p1, name, *p2, new_name, *s, d.get(), exchange);
  if (d && !exchange) evict_if_unused(*d);
  return ok_status();
}

}  // namespace sandfs::memfs
