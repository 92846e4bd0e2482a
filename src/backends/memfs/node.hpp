// Node: one MemFs inode, and the locking rules every MemFs operation follows.
//
// ## One lock per node
// Node::mu guards every field below it: metadata, file pages, directory entries, xattrs, link and
// handle counts. Readers (getattr, read, lookup, readdir) take it shared, mutators exclusive. There
// is no separate data lock, so the meta-then-data / data-then-meta inversion that lets a truncate
// deadlock against a write cannot happen. No MemFs lock is ever held across a co_await (MemFs
// never awaits).
//
// ## Order when several locks are held
// One total order, checkable by tools (TSan) and independent of the tree's shape:
//  1. MemFs::rename_mu_ (only cross-directory rename takes it; it freezes every parent pointer)
//  2. nodes: directories before non-directories, then by ascending inode id (lock_order_less)
//  3. table shards (InodeTable, HandleTable) and the Budget atomics: leaves, never held while
//     taking a node lock
// Two things make that order easy to keep. A new node's id is larger than every existing one, so
// a creator may lock it while holding its parent; and a non-directory is never locked before a
// directory. Where an operation must find a node (in a directory) before it can lock it, and the
// node might sort before a lock it holds (rmdir's victim, rename's four nodes), it looks it up
// first, drops everything, locks all nodes in order (OrderedLocks) and checks the lookup again.
// Lookup and readdirplus never nest directory locks at all (see lookup_refs).
//
// ## Lifetime
// Nodes are shared_ptr-owned by the inode table, by open handles, and briefly by operations in
// flight. A node is evicted (removed from the table, its pages and xattrs given back to the
// capacity budget, `dead` set) when, under its exclusive lock, it has no links, no lookup
// references and no open handles. An operation that reached a node through a stale pointer sees
// `dead` after locking and answers EBADF. Inode ids come from a 64-bit counter and are never
// reused, so generation stays 0.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <shared_mutex>
#include <string>
#include <vector>

#include "backends/memfs/dir_entries.hpp"
#include "backends/memfs/pages.hpp"
#include "core/filesystem.hpp"

namespace sandfs::memfs {

Timespec now();

struct Node {
  Node(InodeId id, uint32_t mode_bits) : ino(id), type(mode_bits & S_IFMT), mode(mode_bits) {}

  const InodeId ino;
  const uint32_t type;  // S_IFMT bits; a node never changes type

  mutable std::shared_mutex mu;

  // ---- guarded by mu ----
  uint32_t mode;  // type | 07777
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t rdev = 0;
  uint32_t nlink = 0;
  Timespec atime, mtime, ctime;
  bool dead = false;
  uint32_t open_handles = 0;

  std::map<std::string, std::vector<char>, std::less<>> xattrs;
  uint64_t xattr_bytes = 0;  // names + values, charged to capacity

  uint64_t size = 0;   // regular files
  PageMap pages;       // regular files
  DirEntries entries;  // directories
  std::string target;  // symlinks

  // ---- atomics ----
  // Incremented either under a shared lock on mu, or under the lock of a directory that links the
  // node (the entry keeps nlink >= 1, and dropping it needs that directory's exclusive lock, so
  // eviction, which needs nlink == 0, cannot race with it). Decremented (forget) by CAS, and read
  // for eviction under the exclusive lock: an eviction never misses a reference.
  std::atomic<uint64_t> lookup_refs{0};
  // Directories: the parent directory's id ("..", subtree checks). Written only at creation and
  // by a cross-directory rename holding rename_mu_.
  std::atomic<InodeId> parent{0};

  bool is_dir() const { return type == S_IFDIR; }
  bool is_reg() const { return type == S_IFREG; }
};

// d_type for a node type.
inline uint32_t dtype_of(uint32_t type) {
  return (type & S_IFMT) >> 12;
}

// The global node lock order: directories first, then ascending id.
inline bool lock_order_less(const Node& a, const Node& b) {
  if (a.is_dir() != b.is_dir()) return a.is_dir();
  return a.ino < b.ino;
}

// Exclusive locks on up to four distinct nodes, taken in the global order and released on
// destruction. Null pointers and duplicates are ignored.
class OrderedLocks {
 public:
  OrderedLocks(std::initializer_list<Node*> nodes) {
    for (Node* n : nodes) {
      if (n == nullptr ||
          std::find(nodes_.begin(), nodes_.begin() + count_, n) != nodes_.begin() + count_) {
        continue;
      }
      assert(count_ < nodes_.size());
      nodes_[count_++] = n;
    }
    std::sort(nodes_.begin(), nodes_.begin() + count_,
              [](const Node* a, const Node* b) { return lock_order_less(*a, *b); });
    for (size_t i = 0; i < count_; ++i)
      nodes_[i]->mu.lock();
  }
  ~OrderedLocks() {
    while (count_ > 0)
      nodes_[--count_]->mu.unlock();
  }
  OrderedLocks(const OrderedLocks&) = delete;
  OrderedLocks& operator=(const OrderedLocks&) = delete;

 private:
  std::array<Node*, 4> nodes_{};
  size_t count_ = 0;
};

}  // namespace sandfs::memfs
