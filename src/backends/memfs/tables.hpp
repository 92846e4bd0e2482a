// Sharded id -> object tables for inodes and open handles.
//
// A shard mutex is held only to find, insert or erase one entry, never while calling out; lookups
// of different ids rarely meet on the same shard, so the tables are not a global lock.
#pragma once

#include <fcntl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "backends/memfs/node.hpp"
#include "core/filesystem.hpp"

namespace sandfs::memfs {

template <class Value>
class ShardedTable {
 public:
  std::shared_ptr<Value> find(uint64_t id) const {
    const Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    return it == s.map.end() ? nullptr : it->second;
  }

  void insert(uint64_t id, std::shared_ptr<Value> value) {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    s.map.insert_or_assign(id, std::move(value));
  }

  // Returns the removed value (nullptr if there was none).
  std::shared_ptr<Value> erase(uint64_t id) {
    Shard& s = shard(id);
    std::lock_guard lock(s.mu);
    auto it = s.map.find(id);
    if (it == s.map.end()) return nullptr;
    std::shared_ptr<Value> v = std::move(it->second);
    s.map.erase(it);
    return v;
  }

 private:
  static constexpr size_t shard_count = 64;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, std::shared_ptr<Value>> map;
  };
  // Ids are handed out sequentially, so the low bits spread them evenly.
  Shard& shard(uint64_t id) { return shards_[id % shard_count]; }
  const Shard& shard(uint64_t id) const { return shards_[id % shard_count]; }

  std::array<Shard, shard_count> shards_;
};

// An open file or directory.
struct Handle {
  std::shared_ptr<Node> node;
  uint32_t flags = 0;  // open(2) flags after writeback normalisation
  bool dir = false;

  // O_ACCMODE 3 is Linux's "no access" mode: neither read nor write.
  bool readable() const { return (flags & O_ACCMODE) == O_RDONLY || (flags & O_ACCMODE) == O_RDWR; }
  bool writable() const { return (flags & O_ACCMODE) == O_WRONLY || (flags & O_ACCMODE) == O_RDWR; }
  bool append() const { return (flags & O_APPEND) != 0; }
};

using InodeTable = ShardedTable<Node>;
using HandleTable = ShardedTable<Handle>;

}  // namespace sandfs::memfs
