// Helpers for the MemFs unit tests: a MemFs with a caller identity and short synchronous
// wrappers around the coroutine interface.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "backends/memfs/memfs.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "support/run_coro.hpp"

namespace sandfs::memfs::testing {

using sandfs::test::run_coro;
inline constexpr InodeId root = fuse::root_id;

struct ListedEntry {
  std::string name;
  InodeId ino = 0;
  uint32_t dtype = 0;
  uint64_t next_offset = 0;
};

// Accepts up to `room` entries, then reports a full buffer.
class CollectSink : public DirSink {
 public:
  explicit CollectSink(size_t room = std::numeric_limits<size_t>::max()) : room_(room) {}
  bool add(std::string_view name, InodeId ino, uint32_t dtype, uint64_t next_offset) override {
    if (entries.size() >= room_) return false;
    entries.push_back({std::string(name), ino, dtype, next_offset});
    return true;
  }
  std::vector<ListedEntry> entries;

 private:
  size_t room_;
};

struct ListedPlus {
  std::string name;
  Entry entry;
  uint32_t dtype = 0;
  uint64_t next_offset = 0;
};

class CollectPlusSink : public DirPlusSink {
 public:
  explicit CollectPlusSink(size_t room = std::numeric_limits<size_t>::max()) : room_(room) {}
  bool add(std::string_view name, const Entry& entry, uint32_t dtype,
           uint64_t next_offset) override {
    if (entries.size() >= room_) return false;
    entries.push_back({std::string(name), entry, dtype, next_offset});
    return true;
  }
  std::vector<ListedPlus> entries;

 private:
  size_t room_;
};

struct TestFs {
  explicit TestFs(MemFsConfig config = {}, SessionParams params = {}) : fs(make_memfs(config)) {
    REQUIRE(run_coro(fs->init(params)).ok());
  }

  RequestContext as(uint32_t uid, uint32_t gid) const {
    RequestContext c = ctx;
    c.uid = uid;
    c.gid = gid;
    return c;
  }

  Result<Entry> lookup(InodeId parent, std::string_view name) {
    return run_coro(fs->lookup(ctx, parent, name));
  }
  Result<AttrReply> getattr(InodeId ino) { return run_coro(fs->getattr(ctx, ino, std::nullopt)); }
  Attr attr(InodeId ino) {
    Result<AttrReply> r = getattr(ino);
    REQUIRE(r.ok());
    return r->attr;
  }
  Result<AttrReply> setattr(InodeId ino, const SetAttrIn& in) {
    return run_coro(fs->setattr(ctx, ino, in));
  }
  Result<AttrReply> truncate(InodeId ino, uint64_t size) {
    SetAttrIn in;
    in.valid = fuse::FATTR_SIZE;
    in.size = size;
    return setattr(ino, in);
  }

  Result<Entry> mkdir(InodeId parent, std::string_view name, uint32_t mode = 0755) {
    return run_coro(fs->mkdir(ctx, parent, name, mode, 0));
  }
  Entry mkdir_ok(InodeId parent, std::string_view name, uint32_t mode = 0755) {
    Result<Entry> e = mkdir(parent, name, mode);
    REQUIRE(e.ok());
    return *e;
  }
  Result<Entry> mknod(InodeId parent, std::string_view name, uint32_t mode, uint32_t rdev = 0) {
    return run_coro(fs->mknod(ctx, parent, name, mode, rdev, 0));
  }
  Result<Entry> symlink(InodeId parent, std::string_view name, std::string_view target) {
    return run_coro(fs->symlink(ctx, parent, name, target));
  }
  Result<Entry> link(InodeId ino, InodeId parent, std::string_view name) {
    return run_coro(fs->link(ctx, ino, parent, name));
  }
  Status unlink(InodeId parent, std::string_view name) {
    return run_coro(fs->unlink(ctx, parent, name));
  }
  Status rmdir(InodeId parent, std::string_view name) {
    return run_coro(fs->rmdir(ctx, parent, name));
  }
  Status rename(InodeId parent, std::string_view name, InodeId new_parent,
                std::string_view new_name, uint32_t flags = 0) {
    return run_coro(fs->rename(ctx, parent, name, new_parent, new_name, flags));
  }

  Result<CreateReply> create(InodeId parent, std::string_view name, uint32_t mode = 0644,
                             uint32_t flags = O_RDWR | O_CREAT, bool kill = false) {
    return run_coro(fs->create(ctx, parent, name, mode, flags, 0, kill));
  }
  // Creates an empty file and releases its handle; returns the entry.
  Entry file(InodeId parent, std::string_view name, uint32_t mode = 0644) {
    Result<CreateReply> r = create(parent, name, mode);
    REQUIRE(r.ok());
    REQUIRE(release(r->entry.ino, r->open.fh).ok());
    return r->entry;
  }
  // Creates a file with content; returns the entry (handle released).
  Entry file_with(InodeId parent, std::string_view name, std::string_view content) {
    Result<CreateReply> r = create(parent, name);
    REQUIRE(r.ok());
    Result<size_t> w = write(r->entry.ino, r->open.fh, 0, content);
    REQUIRE(w.ok());
    REQUIRE(*w == content.size());
    REQUIRE(release(r->entry.ino, r->open.fh).ok());
    return r->entry;
  }

  Result<OpenReply> open(InodeId ino, uint32_t flags = O_RDWR, bool kill = false) {
    return run_coro(fs->open(ctx, ino, flags, kill));
  }
  HandleId open_ok(InodeId ino, uint32_t flags = O_RDWR) {
    Result<OpenReply> r = open(ino, flags);
    REQUIRE(r.ok());
    return r->fh;
  }
  Status release(InodeId ino, HandleId fh) { return run_coro(fs->release(ctx, ino, fh, 0)); }

  // Writes `data`, split over several iovecs to exercise the scatter/gather path.
  Result<size_t> write(InodeId ino, HandleId fh, uint64_t offset, std::string_view data,
                       bool kill = false) {
    std::string copy(data);
    std::vector<iovec> iov;
    size_t pos = 0;
    for (size_t piece : {size_t{1}, size_t{4095}, size_t{5000}}) {
      if (pos >= copy.size()) break;
      const size_t n = std::min(piece, copy.size() - pos);
      iov.push_back({copy.data() + pos, n});
      pos += n;
    }
    if (pos < copy.size()) iov.push_back({copy.data() + pos, copy.size() - pos});
    IoVecs src{iov, copy.size()};
    return run_coro(fs->write(ctx, ino, fh, offset, src, kill));
  }
  Result<std::string> read(InodeId ino, HandleId fh, uint64_t offset, uint32_t size) {
    std::string buf(size, '\xAA');
    std::vector<iovec> iov;
    const size_t half = size / 2;
    if (half > 0) iov.push_back({buf.data(), half});
    if (size > half) iov.push_back({buf.data() + half, size - half});
    IoVecs dst{iov, size};
    Result<size_t> n = run_coro(fs->read(ctx, ino, fh, offset, size, dst));
    if (!n) return Errno{n.error()};
    buf.resize(*n);
    return buf;
  }
  // Reads the whole file through a fresh handle.
  std::string contents(InodeId ino) {
    const HandleId fh = open_ok(ino, O_RDONLY);
    const uint64_t size = attr(ino).size;
    Result<std::string> r = read(ino, fh, 0, static_cast<uint32_t>(size));
    REQUIRE(r.ok());
    REQUIRE(release(ino, fh).ok());
    return *r;
  }

  Result<OpenReply> opendir(InodeId ino) { return run_coro(fs->opendir(ctx, ino, 0)); }
  std::vector<ListedEntry> list(InodeId ino) {
    Result<OpenReply> d = opendir(ino);
    REQUIRE(d.ok());
    CollectSink sink;
    REQUIRE(run_coro(fs->readdir(ctx, ino, d->fh, 0, sink)).ok());
    REQUIRE(run_coro(fs->releasedir(ctx, ino, d->fh)).ok());
    return sink.entries;
  }
  std::vector<std::string> names(InodeId ino) {
    std::vector<std::string> out;
    for (const ListedEntry& e : list(ino))
      out.push_back(e.name);
    return out;
  }

  Status setxattr(InodeId ino, std::string_view name, std::string_view value, uint32_t flags = 0) {
    return run_coro(fs->setxattr(ctx, ino, name, std::span<const char>(value), flags));
  }
  Result<XattrReply> getxattr(InodeId ino, std::string_view name, uint32_t size) {
    return run_coro(fs->getxattr(ctx, ino, name, size));
  }
  Result<XattrReply> listxattr(InodeId ino, uint32_t size) {
    return run_coro(fs->listxattr(ctx, ino, size));
  }
  Status removexattr(InodeId ino, std::string_view name) {
    return run_coro(fs->removexattr(ctx, ino, name));
  }

  Status fallocate(InodeId ino, HandleId fh, uint64_t offset, uint64_t length, uint32_t mode) {
    return run_coro(fs->fallocate(ctx, ino, fh, offset, length, mode));
  }
  Result<uint64_t> lseek(InodeId ino, HandleId fh, uint64_t offset, uint32_t whence) {
    return run_coro(fs->lseek(ctx, ino, fh, offset, whence));
  }
  Result<size_t> copy(InodeId in, HandleId fh_in, uint64_t off_in, InodeId out, HandleId fh_out,
                      uint64_t off_out, uint64_t len) {
    return run_coro(fs->copy_file_range(ctx, in, fh_in, off_in, out, fh_out, off_out, len, 0));
  }
  Result<StatFs> statfs() { return run_coro(fs->statfs(ctx, root)); }
  Status access(InodeId ino, uint32_t mask, uint32_t uid = 0, uint32_t gid = 0) {
    return run_coro(fs->access(as(uid, gid), ino, mask));
  }

  std::shared_ptr<MemFs> fs;
  RequestContext ctx;
};

}  // namespace sandfs::memfs::testing
