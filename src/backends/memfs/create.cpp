// Creating names: mknod, mkdir, symlink, link, create.
#include <fcntl.h>

#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"

namespace sandfs::memfs {

namespace {

// Longest symlink target Linux accepts (PATH_MAX including the NUL).
constexpr size_t symlink_max = 4095;

uint32_t masked(uint32_t mode, uint32_t umask) {
  return mode & ~umask & 07777;
}

}  // namespace

Result<std::shared_ptr<Node>> MemFs::make_child_locked(const RequestContext& ctx, Node& parent,
                                                       std::string_view name, uint32_t mode,
                                                       uint32_t rdev, std::string_view target) {
  if (!inodes_.try_reserve(1)) return Errno{ENOSPC};
  Reservation slot(inodes_, 1);

  const InodeId id = next_ino_.fetch_add(1, std::memory_order_relaxed);
  auto n = std::make_shared<Node>(id, mode);
  n->uid = ctx.uid;
  n->gid = ctx.gid;
  // A setgid directory hands its group down, and its setgid bit to subdirectories (BSD group
  // semantics, as Linux does).
  if ((parent.mode & S_ISGID) != 0) {
    n->gid = parent.gid;
    if (n->is_dir()) n->mode |= S_ISGID;
  }
  n->rdev = rdev;
  n->target = std::string(target);
  n->nlink = n->is_dir() ? 2 : 1;
  const Timespec t = now();
  n->atime = n->mtime = n->ctime = t;
  if (n->is_dir()) n->parent.store(parent.ino, std::memory_order_relaxed);
  n->lookup_refs.store(1, std::memory_order_relaxed);

  nodes_.insert(id, n);
  try {
    parent.entries.insert(name, id, dtype_of(n->type));
  } catch (...) {
    nodes_.erase(id);
    throw;
  }
  slot.commit();
  if (n->is_dir()) ++parent.nlink;
  parent.mtime = parent.ctime = t;
  return n;
}

Result<Entry> MemFs::make_entry(const RequestContext& ctx, InodeId parent, std::string_view name,
                                uint32_t mode, uint32_t rdev, std::string_view target) {
  if (int err = check_name(name); err != 0) return Errno{err};
  std::shared_ptr<Node> dir = find_node(parent);
  if (!dir) return Errno{EBADF};
  if (!dir->is_dir()) return Errno{ENOTDIR};

  std::unique_lock dir_lock(dir->mu);
  if (dir->dead) return Errno{EBADF};
  if (dir->nlink == 0) return Errno{ENOENT};  // removed while still referenced
  if (dir->entries.find(name) != nullptr) return Errno{EEXIST};
  Result<std::shared_ptr<Node>> child = make_child_locked(ctx, *dir, name, mode, rdev, target);
  if (!child) return Errno{child.error()};
  // A new node has the largest id yet, so locking it under its parent keeps the lock order.
  std::shared_lock child_lock((*child)->mu);
  return entry_of(**child);
}

Task<Result<Entry>> MemFs::mknod(const RequestContext& ctx, InodeId parent, std::string_view name,
                                 uint32_t mode, uint32_t rdev, uint32_t umask) {
  const uint32_t type = mode & S_IFMT;
  switch (type) {
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
      rdev = 0;
      break;
    case S_IFCHR:
    case S_IFBLK:
      break;
    default:
      co_return Errno{EINVAL};
  }
  co_return make_entry(ctx, parent, name, type | masked(mode, umask), rdev, {});
}

Task<Result<Entry>> MemFs::mkdir(const RequestContext& ctx, InodeId parent, std::string_view name,
                                 uint32_t mode, uint32_t umask) {
  co_return make_entry(ctx, parent, name, S_IFDIR | masked(mode, umask), 0, {});
}

Task<Result<Entry>> MemFs::symlink(const RequestContext& ctx, InodeId parent, std::string_view name,
                                   std::string_view target) {
  if (target.empty()) co_return Errno{ENOENT};
  if (target.find('\0') != std::string_view::npos) co_return Errno{EINVAL};
  if (target.size() > symlink_max) co_return Errno{ENAMETOOLONG};
  co_return make_entry(ctx, parent, name, S_IFLNK | 0777, 0, target);
}

Task<Result<Entry>> MemFs::link(const RequestContext&, InodeId ino, InodeId new_parent,
                                std::string_view new_name) {
  if (int err = check_name(new_name); err != 0) co_return Errno{err};
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  if (n->is_dir()) co_return Errno{EPERM};
  std::shared_ptr<Node> dir = find_node(new_parent);
  if (!dir) co_return Errno{EBADF};
  if (!dir->is_dir()) co_return Errno{ENOTDIR};

  // Directory before non-directory, as the lock order says.
  std::unique_lock dir_lock(dir->mu);
  if (dir->dead) co_return Errno{EBADF};
  if (dir->nlink == 0) co_return Errno{ENOENT};
  if (dir->entries.find(new_name) != nullptr) co_return Errno{EEXIST};
  std::unique_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  if (n->nlink == 0) co_return Errno{ENOENT};  // no resurrecting unlinked files, as Linux

  dir->entries.insert(new_name, n->ino, dtype_of(n->type));
  const Timespec t = now();
  ++n->nlink;
  n->ctime = t;
  n->lookup_refs.fetch_add(1, std::memory_order_acq_rel);
  dir->mtime = dir->ctime = t;
  co_return entry_of(*n);
}

Task<Result<CreateReply>> MemFs::create(const RequestContext& ctx, InodeId parent,
                                        std::string_view name, uint32_t mode, uint32_t flags,
                                        uint32_t umask, bool kill_suidgid) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  std::shared_ptr<Node> dir = find_node(parent);
  if (!dir) co_return Errno{EBADF};
  if (!dir->is_dir()) co_return Errno{ENOTDIR};

  std::unique_lock dir_lock(dir->mu);
  if (dir->dead) co_return Errno{EBADF};
  if (dir->nlink == 0) co_return Errno{ENOENT};

  if (const DirEntry* de = dir->entries.find(name); de != nullptr) {
    // Another creator won the race for this name: without O_EXCL this is a plain open.
    if ((flags & O_EXCL) != 0) co_return Errno{EEXIST};
    std::shared_ptr<Node> existing = find_node(de->ino);
    if (!existing) co_return Errno{EIO};
    if (existing->is_dir()) co_return Errno{EISDIR};
    if (!existing->is_reg()) co_return Errno{EEXIST};
    std::unique_lock lock(existing->mu);  // a regular file: sorts after every directory
    Result<OpenReply> opened = open_locked(existing, flags, kill_suidgid);
    if (!opened) co_return Errno{opened.error()};
    existing->lookup_refs.fetch_add(1, std::memory_order_acq_rel);
    co_return CreateReply{entry_of(*existing), *opened};
  }

  Result<std::shared_ptr<Node>> child =
      make_child_locked(ctx, *dir, name, S_IFREG | masked(mode, umask), 0, {});
  if (!child) co_return Errno{child.error()};
  std::unique_lock lock((*child)->mu);
  // A new file is empty and was never privileged: nothing to truncate or kill.
  Result<OpenReply> opened = open_locked(*child, flags & ~static_cast<uint32_t>(O_TRUNC), false);
  if (!opened) co_return Errno{opened.error()};
  co_return CreateReply{entry_of(**child), *opened};
}

}  // namespace sandfs::memfs
