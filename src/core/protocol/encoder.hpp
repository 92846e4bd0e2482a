// Encoding FUSE replies: backend values to kernel structs, and directory entry packing.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "core/filesystem.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::fuse {

inline void split_timeout(std::chrono::nanoseconds t, uint64_t& sec, uint32_t& nsec) {
  if (t.count() <= 0) {
    sec = 0;
    nsec = 0;
    return;
  }
  sec = static_cast<uint64_t>(t.count() / 1'000'000'000);
  nsec = static_cast<uint32_t>(t.count() % 1'000'000'000);
}

inline fuse_attr to_fuse_attr(const Attr& a) {
  fuse_attr out{};
  out.ino = a.ino;
  out.size = a.size;
  out.blocks = a.blocks;
  out.atime = static_cast<uint64_t>(a.atime.sec);
  out.mtime = static_cast<uint64_t>(a.mtime.sec);
  out.ctime = static_cast<uint64_t>(a.ctime.sec);
  out.atimensec = a.atime.nsec;
  out.mtimensec = a.mtime.nsec;
  out.ctimensec = a.ctime.nsec;
  out.mode = a.mode;
  out.nlink = a.nlink;
  out.uid = a.uid;
  out.gid = a.gid;
  out.rdev = a.rdev;
  out.blksize = a.blksize;
  return out;
}

inline fuse_entry_out to_entry_out(const Entry& e) {
  fuse_entry_out out{};
  out.nodeid = e.ino;
  out.generation = e.generation;
  split_timeout(e.entry_timeout, out.entry_valid, out.entry_valid_nsec);
  if (e.ino != 0) {
    split_timeout(e.attr_timeout, out.attr_valid, out.attr_valid_nsec);
    out.attr = to_fuse_attr(e.attr);
  }
  return out;
}

inline fuse_attr_out to_attr_out(const AttrReply& r) {
  fuse_attr_out out{};
  uint64_t sec = 0;
  split_timeout(r.attr_timeout, sec, out.attr_valid_nsec);
  out.attr_valid = sec;
  out.attr = to_fuse_attr(r.attr);
  return out;
}

inline fuse_kstatfs to_kstatfs(const StatFs& s) {
  fuse_kstatfs out{};
  out.blocks = s.blocks;
  out.bfree = s.bfree;
  out.bavail = s.bavail;
  out.files = s.files;
  out.ffree = s.ffree;
  out.bsize = s.bsize;
  out.namelen = s.namelen;
  out.frsize = s.frsize;
  return out;
}

// Packs fuse_dirent / fuse_direntplus records into a caller-provided buffer.
class DirentPacker {
 public:
  explicit DirentPacker(std::span<std::byte> buffer) : buf_(buffer) {}

  bool add(std::string_view name, uint64_t ino, uint32_t dtype, uint64_t next_offset) {
    const size_t rec = fuse_dirent_size(name.size());
    if (rec > buf_.size() - used_) return false;
    std::byte* p = buf_.data() + used_;
    fuse_dirent d{ino, next_offset, static_cast<uint32_t>(name.size()), dtype};
    std::memcpy(p, &d, sizeof d);
    std::memcpy(p + sizeof d, name.data(), name.size());
    std::memset(p + sizeof d + name.size(), 0, rec - sizeof d - name.size());
    used_ += rec;
    return true;
  }

  bool add_plus(std::string_view name, const Entry& entry, uint32_t dtype, uint64_t next_offset) {
    const size_t rec = fuse_direntplus_size(name.size());
    if (rec > buf_.size() - used_) return false;
    std::byte* p = buf_.data() + used_;
    fuse_direntplus d{};
    // "." and ".." carry no entry: the kernel neither instantiates nor counts them.
    const bool dot = name == "." || name == "..";
    if (!dot) d.entry_out = to_entry_out(entry);
    d.dirent = fuse_dirent{entry.ino, next_offset, static_cast<uint32_t>(name.size()), dtype};
    std::memcpy(p, &d, sizeof d);
    std::memcpy(p + sizeof d, name.data(), name.size());
    std::memset(p + sizeof d + name.size(), 0, rec - sizeof d - name.size());
    used_ += rec;
    return true;
  }

  size_t used() const { return used_; }

 private:
  std::span<std::byte> buf_;
  size_t used_ = 0;
};

}  // namespace sandfs::fuse
