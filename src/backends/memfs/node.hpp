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
//  1. MemFs::rename_mu_ (only cross-directory rename takes it; it freezes the tree's shape)
//  2. directory nodes, ancestor before descendant; two unrelated directories (only possible under
//     rename_mu_) by ascending inode id
//  3. the child nodes an operation touches (the source and target of a rename, the entry being
//     unlinked or looked up), after all their parents, by ascending inode id
//  4. table shards (InodeTable, HandleTable) and the Budget atomics: leaves, never held while
//     taking a node lock
// Every multi-node operation takes parents first and children second, and a child is never locked
// before its parent, so no cycle can form.
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

#include <atomic>
#include <cstdint>
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
  // Changed with at least a shared lock on mu held (lookups of one child run side by side), and
  // read for eviction only under the exclusive lock, so an eviction can never miss a new
  // reference.
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

}  // namespace sandfs::memfs
