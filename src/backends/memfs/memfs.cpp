// MemFs construction, negotiation, statfs, and the helpers every operation file shares.
#include "backends/memfs/memfs.hpp"

#include <fcntl.h>
#include <time.h>

#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::memfs {

using namespace std::chrono_literals;

Timespec now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return Timespec{static_cast<int64_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec)};
}

int check_name(std::string_view name) {
  if (name.empty()) return EINVAL;
  if (name == "." || name == ".." || name.find('/') != std::string_view::npos) return EPERM;
  if (name.find('\0') != std::string_view::npos) return EINVAL;
  if (name.size() > 255) return ENAMETOOLONG;
  return 0;
}

uint32_t kill_suidgid_bits(uint32_t mode) {
  mode &= ~static_cast<uint32_t>(S_ISUID);
  if ((mode & S_IXGRP) != 0) mode &= ~static_cast<uint32_t>(S_ISGID);
  return mode;
}

MemFs::MemFs(MemFsConfig config)
    : config_(config),
      entry_timeout_(config.entry_timeout.value_or(cache_timeout(config.cache))),
      attr_timeout_(config.attr_timeout.value_or(cache_timeout(config.cache))),
      bytes_(config.capacity_bytes.value_or(unlimited_capacity), 0),
      inodes_(config.max_inodes.value_or(unlimited_inodes), 1) {
  auto root = std::make_shared<Node>(fuse::root_id, S_IFDIR | (config.root_mode & 07777));
  root->uid = config.root_uid;
  root->gid = config.root_gid;
  root->nlink = 2;
  root->atime = root->mtime = root->ctime = now();
  root->parent.store(fuse::root_id);
  nodes_.insert(fuse::root_id, std::move(root));
}

MemFs::~MemFs() = default;

std::shared_ptr<MemFs> make_memfs(MemFsConfig config) {
  return std::make_shared<MemFs>(std::move(config));
}

Capabilities MemFs::capabilities() const {
  Capabilities caps;
  caps.writeback_cache = config_.writeback;
  caps.readdirplus = true;
  caps.handle_killpriv_v2 = true;
  caps.atomic_o_trunc = true;
  caps.cache_symlinks = config_.cache != CachePolicy::never;
  caps.export_support = false;
  return caps;
}

Task<Status> MemFs::init(const SessionParams& params) {
  // Open flags are only adjusted for writeback when the kernel really buffers writes.
  writeback_.store(params.writeback_cache && config_.writeback, std::memory_order_relaxed);
  co_return ok_status();
}

Task<void> MemFs::destroy() {
  co_return;
}

Attr MemFs::attr_of(const Node& n) const {
  Attr a;
  a.ino = n.ino;
  switch (n.type) {
    case S_IFREG:
      a.size = n.size;
      a.blocks = n.pages.count() * (page_size / 512);
      break;
    case S_IFDIR:
      a.size = page_size;
      break;
    case S_IFLNK:
      a.size = n.target.size();
      break;
    default:
      break;
  }
  a.atime = n.atime;
  a.mtime = n.mtime;
  a.ctime = n.ctime;
  a.mode = n.mode;
  a.nlink = n.nlink;
  a.uid = n.uid;
  a.gid = n.gid;
  a.rdev = n.rdev;
  a.blksize = page_size;
  return a;
}

Entry MemFs::entry_of(const Node& n) const {
  Entry e;
  e.ino = n.ino;
  e.generation = 0;
  e.attr = attr_of(n);
  e.entry_timeout = entry_timeout_;
  e.attr_timeout = attr_timeout_;
  return e;
}

AttrReply MemFs::attr_reply_of(const Node& n) const {
  return AttrReply{attr_of(n), attr_timeout_};
}

Result<std::shared_ptr<Handle>> MemFs::find_handle(HandleId fh, InodeId ino, bool dir) const {
  std::shared_ptr<Handle> h = handles_.find(fh);
  // A guest may pair a valid handle with another inode; trust neither alone.
  if (!h || h->dir != dir || h->node->ino != ino) return Errno{EBADF};
  return h;
}

uint32_t MemFs::open_reply_flags(bool dir) const {
  return cache_open_flags(config_.cache, dir);
}

void MemFs::evict_if_unused(Node& n) {
  if (n.ino == fuse::root_id || n.dead || n.nlink != 0 || n.open_handles != 0 ||
      n.lookup_refs.load(std::memory_order_acquire) != 0) {
    return;
  }
  n.dead = true;
  release_pages(n.pages.clear());
  n.size = 0;
  bytes_.release(n.xattr_bytes);
  n.xattr_bytes = 0;
  n.xattrs.clear();
  n.target.clear();
  // Every caller reached n through its own shared_ptr, so dropping the table's reference here
  // cannot destroy the node (and its locked mutex) under our feet.
  nodes_.erase(n.ino);
  inodes_.release(1);
}

void MemFs::truncate_locked(Node& n, uint64_t size) {
  if (size < n.size) release_pages(n.pages.truncate(size));
  n.size = size;
}

Task<Result<StatFs>> MemFs::statfs(const RequestContext&, InodeId ino) {
  if (!find_node(ino)) co_return Errno{EBADF};
  StatFs st;
  const uint64_t cap = bytes_.limit();
  const uint64_t used = bytes_.used();
  st.bsize = st.frsize = page_size;
  st.blocks = cap / page_size;
  st.bfree = st.bavail = used >= cap ? 0 : (cap - used) / page_size;
  st.files = inodes_.limit();
  st.ffree = inodes_.used() >= inodes_.limit() ? 0 : inodes_.limit() - inodes_.used();
  st.namelen = 255;
  co_return st;
}

}  // namespace sandfs::memfs
