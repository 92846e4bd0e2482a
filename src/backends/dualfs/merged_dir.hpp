// Merged directory listings.
//
// opendir takes a snapshot of the directory's merged listing: "." and "..", then the entries of
// each side the policy consults, in precedence order, one per name (the first side's entry
// wins), leaving out reserved names (whiteouts.hpp), B names whited out in the directory's A
// side, and all of B when that A directory is opaque. The snapshot is what readdir serves: entry
// i (from 0) has offset i + 1, so every offset handed out stays valid for the handle's life
// whatever changes meanwhile. A readdir at offset 0 after the snapshot was served (rewinddir)
// takes a fresh one.
//
// Building a snapshot lists the two child directories (child_listing.hpp): its cost is that of
// the directory, never of the whole table. d_ino is the DualFs inode of an entry already known,
// or a number reserved for that child inode (inode_table.hpp). readdirplus resolves each entry
// through the policy like a lookup (one reference each; entries that vanished since the snapshot
// are skipped), and reports the d_type of what it found.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "core/filesystem.hpp"

namespace sandfs::dualfs {

struct DirItem {
  std::string name;
  InodeId ino = 0;
  uint32_t dtype = 0;
};

struct DirSnapshot {
  std::mutex mu;
  std::vector<DirItem> items;  // "." and ".." first
  bool served = false;         // a readdir has read from it
};

}  // namespace sandfs::dualfs
