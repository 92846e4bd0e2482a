// DirEntries: the children of one directory, findable by name and listable by a stable cookie.
//
// Each entry gets a cookie from a per-directory counter when it is inserted; readdir offsets are
// these cookies. A listing continues at "the first cookie after k", an O(log n) search that stays
// valid however many entries were added or removed in between (no per-handle snapshot, no O(n)
// skip). Cookies 1 and 2 belong to "." and "..", so entries start at 3.
//
// Not thread-safe: the directory Node's lock guards it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "core/filesystem.hpp"

namespace sandfs::memfs {

struct DirEntry {
  InodeId ino = 0;
  uint32_t dtype = 0;  // DT_*
  uint64_t cookie = 0;
};

class DirEntries {
 public:
  static constexpr uint64_t first_cookie = 3;

  DirEntry* find(std::string_view name);
  const DirEntry* find(std::string_view name) const;

  // The name must not exist yet. Strong guarantee.
  void insert(std::string_view name, InodeId ino, uint32_t dtype);
  void erase(std::string_view name);

  bool empty() const { return by_name_.empty(); }
  size_t size() const { return by_name_.size(); }

  // Calls f(name, entry) for every entry whose cookie is greater than `after`, in cookie order,
  // until f returns false.
  template <class F>
  void for_each_after(uint64_t after, F&& f) const {
    for (auto it = by_cookie_.upper_bound(after); it != by_cookie_.end(); ++it) {
      if (!f(std::string_view(it->second->first), it->second->second)) return;
    }
  }

 private:
  using ByName = std::map<std::string, DirEntry, std::less<>>;
  ByName by_name_;
  std::map<uint64_t, ByName::const_iterator> by_cookie_;
  uint64_t next_cookie_ = first_cookie;
};

}  // namespace sandfs::memfs
