// Open files and directories: the handle tables.
//
// A handle owns its host fd (opened for I/O through /proc/self/fd, see confinement.hpp) and holds
// its inode entry, so it keeps working after the inode is forgotten, unlinked or renamed.
// Operations copy the shared_ptr out of the table and let go of the shard lock at once, so a
// release racing with a read only ends the handle when the read is done with it, and no table
// lock is ever held across host I/O.
#pragma once

#include <fcntl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/passthrough/host_fd.hpp"
#include "backends/passthrough/inode_store.hpp"
#include "core/filesystem.hpp"

namespace sandfs::passthrough {

template <class Value>
class HandleTable {
 public:
  std::shared_ptr<Value> find(uint64_t id) const {
    const Shard& s = shards_[id % shard_count];
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    return it == s.map.end() ? nullptr : it->second;
  }
  void insert(uint64_t id, std::shared_ptr<Value> value) {
    Shard& s = shards_[id % shard_count];
    std::lock_guard lock(s.mu);
    s.map.insert_or_assign(id, std::move(value));
  }
  // Returns the removed value (null if there was none). The caller drops it after the lock.
  std::shared_ptr<Value> erase(uint64_t id) {
    Shard& s = shards_[id % shard_count];
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    if (it == s.map.end()) return nullptr;
    std::shared_ptr<Value> v = std::move(it->second);
    s.map.erase(it);
    return v;
  }
  void clear() {
    for (Shard& s : shards_) {
      std::unordered_map<uint64_t, std::shared_ptr<Value>> gone;
      std::lock_guard lock(s.mu);
      gone.swap(s.map);
    }
  }

 private:
  static constexpr size_t shard_count = 64;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, std::shared_ptr<Value>> map;
  };
  std::array<Shard, shard_count> shards_;
};

struct FileHandle {
  std::shared_ptr<Inode> inode;
  SharedFd fd;
  uint32_t flags = 0;  // the host open flags

  bool readable() const { return (flags & O_ACCMODE) == O_RDONLY || (flags & O_ACCMODE) == O_RDWR; }
  bool writable() const { return (flags & O_ACCMODE) == O_WRONLY || (flags & O_ACCMODE) == O_RDWR; }
  bool append() const { return (flags & O_APPEND) != 0; }
};

// One host directory entry as getdents64 reported it, plus the guest's d_type.
struct DirEntryRef {
  uint64_t host_ino = 0;
  uint64_t next_offset = 0;  // the host d_off: where the listing continues after this entry
  uint32_t name_offset = 0;  // into DirBatch::names
  uint16_t name_length = 0;
  uint8_t dtype = 0;
};

// Entries read from the host but not yet sent, and the offset they follow.
struct DirBatch {
  std::vector<char> names;
  std::vector<DirEntryRef> entries;
  size_t next = 0;     // first entry not sent yet
  uint64_t after = 0;  // the guest offset entries[next] follows
  bool valid = false;
  bool typed = false;  // dtypes are the guest's (readdirplus batches keep the host's)

  std::string_view name(const DirEntryRef& e) const {
    return std::string_view(names.data() + e.name_offset, e.name_length);
  }
  bool empty() const { return next >= entries.size(); }
};

struct DirHandle {
  std::shared_ptr<Inode> inode;
  SharedFd fd;
  // Guards the fd's position (taken inside blocking jobs, never across a co_await) and `host_pos`.
  std::mutex pos_mu;
  uint64_t host_pos = 0;  // where the host fd's position is (a d_off, or 0 at the start)
  // Guards `batch`; held only to move it in or out.
  std::mutex batch_mu;
  DirBatch batch;
};

}  // namespace sandfs::passthrough
