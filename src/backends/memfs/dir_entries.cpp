#include "backends/memfs/dir_entries.hpp"

namespace sandfs::memfs {

DirEntry* DirEntries::find(std::string_view name) {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

const DirEntry* DirEntries::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

void DirEntries::insert(std::string_view name, InodeId ino, uint32_t dtype) {
  const uint64_t cookie = next_cookie_;
  auto [it, inserted] = by_name_.emplace(std::string(name), DirEntry{ino, dtype, cookie});
  if (!inserted) return;
  try {
    by_cookie_.emplace_hint(by_cookie_.end(), cookie, it);
  } catch (...) {
    by_name_.erase(it);
    throw;
  }
  ++next_cookie_;
}

void DirEntries::erase(std::string_view name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  by_cookie_.erase(it->second.cookie);
  by_name_.erase(it);
}

}  // namespace sandfs::memfs
