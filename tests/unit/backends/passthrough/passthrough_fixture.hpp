// Helpers for the PassthroughFs unit tests: a fresh host directory under /tmp, a PassthroughFs on
// it, short synchronous wrappers around the coroutine interface (run on this thread's
// RingRunner), and direct host-side views (lstat, lgetxattr) to check what really landed on disk.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/passthrough/passthrough.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "support/ring_runner.hpp"

namespace sandfs::passthrough::testing {

using sandfs::test::run_io;
inline constexpr InodeId root = fuse::root_id;

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it.
class HostDir {
 public:
  HostDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/sandfs-pt-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~HostDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  HostDir(const HostDir&) = delete;
  HostDir& operator=(const HostDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

struct ListedEntry {
  std::string name;
  InodeId ino = 0;
  uint32_t dtype = 0;
  uint64_t next_offset = 0;
};

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

using Tweak = std::function<void(PassthroughConfig&)>;

struct TestFs {
  explicit TestFs(Tweak tweak = {}, SessionParams params = {}) {
    config.root = dir.path();
    if (tweak) tweak(config);
    MakeResult made = make_passthrough(config);
    INFO(made.error);
    REQUIRE(made);
    fs = made.fs;
    REQUIRE(run_io(fs->init(params)).ok());
  }
  RequestContext as(uint32_t uid, uint32_t gid) const {
    RequestContext c = ctx;
    c.uid = uid;
    c.gid = gid;
    return c;
  }

  // ---- host side ----
  std::string host(std::string_view rel) const { return dir / rel; }
  struct stat host_stat(std::string_view rel) const {
    struct stat st {};
    REQUIRE(::lstat(host(rel).c_str(), &st) == 0);
    return st;
  }
  bool host_exists(std::string_view rel) const {
    struct stat st {};
    return ::lstat(host(rel).c_str(), &st) == 0;
  }
  std::optional<std::string> host_xattr(std::string_view rel, const std::string& name) const {
    char buf[256];
    ssize_t n = ::lgetxattr(host(rel).c_str(), name.c_str(), buf, sizeof buf);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }
  std::optional<std::string> host_record(std::string_view rel) const {
    return host_xattr(rel, config.stat_xattr);
  }
  void host_write(std::string_view rel, std::string_view content, mode_t mode = 0644) const {
    int fd = ::open(host(rel).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
  }
  void host_mkdir(std::string_view rel, mode_t mode = 0755) const {
    REQUIRE(::mkdir(host(rel).c_str(), mode) == 0);
  }
  std::string host_read(std::string_view rel) const {
    int fd = ::open(host(rel).c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
      out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
  }

  // ---- the filesystem ----
  Result<Entry> lookup(InodeId parent, std::string_view name) {
    return run_io(fs->lookup(ctx, parent, name));
  }
  Entry lookup_ok(InodeId parent, std::string_view name) {
    Result<Entry> e = lookup(parent, name);
    INFO(name << ": " << (e.ok() ? 0 : e.error()));
    REQUIRE(e.ok());
    REQUIRE(e->ino != 0);
    return *e;
  }
  // Looks up a path of names from the root.
  Entry walk(std::string_view path) {
    InodeId at = root;
    Entry e;
    size_t pos = 0;
    while (pos < path.size()) {
      size_t end = path.find('/', pos);
      if (end == std::string_view::npos) end = path.size();
      e = lookup_ok(at, path.substr(pos, end - pos));
      at = e.ino;
      pos = end + 1;
    }
    return e;
  }
  void forget(InodeId ino, uint64_t n = 1) { fs->forget(ino, n); }
  Result<AttrReply> getattr(InodeId ino, std::optional<HandleId> fh = std::nullopt) {
    return run_io(fs->getattr(ctx, ino, fh));
  }
  Attr attr(InodeId ino) {
    Result<AttrReply> r = getattr(ino);
    INFO("getattr errno " << (r.ok() ? 0 : r.error()));
    REQUIRE(r.ok());
    return r->attr;
  }
  Result<AttrReply> setattr(InodeId ino, const SetAttrIn& in) {
    return run_io(fs->setattr(ctx, ino, in));
  }
  Result<AttrReply> chmod(InodeId ino, uint32_t mode) {
    SetAttrIn in;
    in.valid = fuse::FATTR_MODE;
    in.mode = mode;
    return setattr(ino, in);
  }
  Result<AttrReply> chown(InodeId ino, uint32_t uid, uint32_t gid) {
    SetAttrIn in;
    in.valid = fuse::FATTR_UID | fuse::FATTR_GID;
    in.uid = uid;
    in.gid = gid;
    return setattr(ino, in);
  }
  Result<AttrReply> truncate(InodeId ino, uint64_t size, uint32_t extra = 0) {
    SetAttrIn in;
    in.valid = fuse::FATTR_SIZE | extra;
    in.size = size;
    return setattr(ino, in);
  }
  Result<std::string> readlink(InodeId ino) { return run_io(fs->readlink(ctx, ino)); }

  Result<Entry> mkdir(InodeId parent, std::string_view name, uint32_t mode = 0755,
                      uint32_t umask = 0) {
    return run_io(fs->mkdir(ctx, parent, name, mode, umask));
  }
  Entry mkdir_ok(InodeId parent, std::string_view name, uint32_t mode = 0755) {
    Result<Entry> e = mkdir(parent, name, mode);
    INFO("mkdir " << name << ": " << (e.ok() ? 0 : e.error()));
    REQUIRE(e.ok());
    return *e;
  }
  Result<Entry> mknod(InodeId parent, std::string_view name, uint32_t mode, uint32_t rdev = 0) {
    return run_io(fs->mknod(ctx, parent, name, mode, rdev, 0));
  }
  Result<Entry> symlink(InodeId parent, std::string_view name, std::string_view target) {
    return run_io(fs->symlink(ctx, parent, name, target));
  }
  Result<Entry> link(InodeId ino, InodeId parent, std::string_view name) {
    return run_io(fs->link(ctx, ino, parent, name));
  }
  Status unlink(InodeId parent, std::string_view name) {
    return run_io(fs->unlink(ctx, parent, name));
  }
  Status rmdir(InodeId parent, std::string_view name) {
    return run_io(fs->rmdir(ctx, parent, name));
  }
  Status rename(InodeId parent, std::string_view name, InodeId new_parent,
                std::string_view new_name, uint32_t flags = 0) {
    return run_io(fs->rename(ctx, parent, name, new_parent, new_name, flags));
  }

  Result<CreateReply> create(InodeId parent, std::string_view name, uint32_t mode = 0644,
                             uint32_t flags = O_RDWR | O_CREAT, bool kill = false,
                             uint32_t umask = 0) {
    return run_io(fs->create(ctx, parent, name, mode, flags, umask, kill));
  }
  // Creates an empty file and releases its handle; returns the entry.
  Entry file(InodeId parent, std::string_view name, uint32_t mode = 0644) {
    Result<CreateReply> r = create(parent, name, mode);
    INFO("create " << name << ": " << (r.ok() ? 0 : r.error()));
    REQUIRE(r.ok());
    REQUIRE(release(r->entry.ino, r->open.fh).ok());
    return r->entry;
  }
  Entry file_with(InodeId parent, std::string_view name, std::string_view content) {
    Result<CreateReply> r = create(parent, name);
    INFO("create " << name << ": " << (r.ok() ? 0 : r.error()));
    REQUIRE(r.ok());
    Result<size_t> w = write(r->entry.ino, r->open.fh, 0, content);
    REQUIRE(w.ok());
    REQUIRE(*w == content.size());
    REQUIRE(release(r->entry.ino, r->open.fh).ok());
    return r->entry;
  }

  Result<OpenReply> open(InodeId ino, uint32_t flags = O_RDWR, bool kill = false) {
    return run_io(fs->open(ctx, ino, flags, kill));
  }
  HandleId open_ok(InodeId ino, uint32_t flags = O_RDWR) {
    Result<OpenReply> r = open(ino, flags);
    INFO("open errno " << (r.ok() ? 0 : r.error()));
    REQUIRE(r.ok());
    return r->fh;
  }
  Status release(InodeId ino, HandleId fh) { return run_io(fs->release(ctx, ino, fh, 0)); }

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
    return run_io(fs->write(ctx, ino, fh, offset, src, kill));
  }
  Result<std::string> read(InodeId ino, HandleId fh, uint64_t offset, uint32_t size) {
    std::string buf(size, '\xAA');
    std::vector<iovec> iov;
    const size_t half = size / 2;
    if (half > 0) iov.push_back({buf.data(), half});
    if (size > half) iov.push_back({buf.data() + half, size - half});
    IoVecs dst{iov, size};
    Result<size_t> n = run_io(fs->read(ctx, ino, fh, offset, size, dst));
    if (!n) return Errno{n.error()};
    buf.resize(*n);
    return buf;
  }
  std::string contents(InodeId ino) {
    const HandleId fh = open_ok(ino, O_RDONLY);
    const uint64_t size = attr(ino).size;
    Result<std::string> r = read(ino, fh, 0, static_cast<uint32_t>(size));
    REQUIRE(r.ok());
    REQUIRE(release(ino, fh).ok());
    return *r;
  }

  Result<OpenReply> opendir(InodeId ino) { return run_io(fs->opendir(ctx, ino, 0)); }
  Status releasedir(InodeId ino, HandleId fh) { return run_io(fs->releasedir(ctx, ino, fh)); }
  std::vector<ListedEntry> list(InodeId ino) {
    Result<OpenReply> d = opendir(ino);
    REQUIRE(d.ok());
    CollectSink sink;
    Status st = run_io(fs->readdir(ctx, ino, d->fh, 0, sink));
    REQUIRE(st.ok());
    REQUIRE(releasedir(ino, d->fh).ok());
    return sink.entries;
  }
  std::vector<std::string> names(InodeId ino) {
    std::vector<std::string> out;
    for (const ListedEntry& e : list(ino))
      out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<ListedPlus> list_plus(InodeId ino) {
    Result<OpenReply> d = opendir(ino);
    REQUIRE(d.ok());
    CollectPlusSink sink;
    Status st = run_io(fs->readdirplus(ctx, ino, d->fh, 0, sink));
    REQUIRE(st.ok());
    REQUIRE(releasedir(ino, d->fh).ok());
    return sink.entries;
  }

  Status setxattr(InodeId ino, std::string_view name, std::string_view value, uint32_t flags = 0) {
    return run_io(fs->setxattr(ctx, ino, name, std::span<const char>(value), flags));
  }
  Result<XattrReply> getxattr(InodeId ino, std::string_view name, uint32_t size) {
    return run_io(fs->getxattr(ctx, ino, name, size));
  }
  Result<XattrReply> listxattr(InodeId ino, uint32_t size) {
    return run_io(fs->listxattr(ctx, ino, size));
  }
  Status removexattr(InodeId ino, std::string_view name) {
    return run_io(fs->removexattr(ctx, ino, name));
  }

  Status fallocate(InodeId ino, HandleId fh, uint64_t offset, uint64_t length, uint32_t mode) {
    return run_io(fs->fallocate(ctx, ino, fh, offset, length, mode));
  }
  Result<uint64_t> lseek(InodeId ino, HandleId fh, uint64_t offset, uint32_t whence) {
    return run_io(fs->lseek(ctx, ino, fh, offset, whence));
  }
  Result<size_t> copy(InodeId in, HandleId fh_in, uint64_t off_in, InodeId out, HandleId fh_out,
                      uint64_t off_out, uint64_t len) {
    return run_io(fs->copy_file_range(ctx, in, fh_in, off_in, out, fh_out, off_out, len, 0));
  }
  Status fsync(InodeId ino, HandleId fh, bool datasync = false) {
    return run_io(fs->fsync(ctx, ino, fh, datasync));
  }
  Result<StatFs> statfs(InodeId ino = root) { return run_io(fs->statfs(ctx, ino)); }
  Status access(InodeId ino, uint32_t mask, uint32_t uid = 0, uint32_t gid = 0) {
    return run_io(fs->access(as(uid, gid), ino, mask));
  }

  HostDir dir;
  PassthroughConfig config;
  std::shared_ptr<PassthroughFs> fs;
  RequestContext ctx;
};

// The errno a Result carries, 0 for success.
template <class R>
int err(const R& r) {
  return r.ok() ? 0 : r.error();
}

// The 20 bytes of a record, as the host must hold them.
inline std::string record_bytes(uint32_t uid, uint32_t gid, uint32_t mode, uint32_t rdev = 0) {
  std::string out(20, '\0');
  out[0] = 1;
  std::memcpy(out.data() + 4, &uid, 4);
  std::memcpy(out.data() + 8, &gid, 4);
  std::memcpy(out.data() + 12, &mode, 4);
  std::memcpy(out.data() + 16, &rdev, 4);
  return out;
}

}  // namespace sandfs::passthrough::testing
