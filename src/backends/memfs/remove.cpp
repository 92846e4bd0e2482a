// Removing names: unlink and rmdir. A removed inode lives on while the kernel holds lookup
// references or handles to it (open-after-unlink); evict_if_unused frees it at the last one.
#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"

namespace sandfs::memfs {

Task<Status> MemFs::unlink(const RequestContext&, InodeId parent, std::string_view name) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  std::shared_ptr<Node> dir = find_node(parent);
  if (!dir) co_return Errno{EBADF};
  if (!dir->is_dir()) co_return Errno{ENOTDIR};

  std::unique_lock dir_lock(dir->mu);
  if (dir->dead) co_return Errno{EBADF};
  const DirEntry* de = dir->entries.find(name);
  if (de == nullptr) co_return Errno{ENOENT};
  std::shared_ptr<Node> child = find_node(de->ino);
  if (!child) co_return Errno{EIO};
  if (child->is_dir()) co_return Errno{EISDIR};

  std::unique_lock child_lock(child->mu);
  dir->entries.erase(name);
  const Timespec t = now();
  --child->nlink;
  child->ctime = t;
  dir->mtime = dir->ctime = t;
  evict_if_unused(*child);
  co_return ok_status();
}

Task<Status> MemFs::rmdir(const RequestContext&, InodeId parent, std::string_view name) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  std::shared_ptr<Node> dir = find_node(parent);
  if (!dir) co_return Errno{EBADF};
  if (!dir->is_dir()) co_return Errno{ENOTDIR};

  // The victim may sort before its parent in the lock order (an old directory moved into a newer
  // one): find it, then lock both in order and check it is still the one under that name.
  for (;;) {
    std::shared_ptr<Node> child;
    {
      std::shared_lock dir_lock(dir->mu);
      if (dir->dead) co_return Errno{EBADF};
      const DirEntry* de = dir->entries.find(name);
      if (de == nullptr) co_return Errno{ENOENT};
      child = find_node(de->ino);
      if (!child) co_return Errno{EIO};
    }
    if (!child->is_dir()) co_return Errno{ENOTDIR};

    OrderedLocks locks{dir.get(), child.get()};
    if (dir->dead) co_return Errno{EBADF};
    const DirEntry* de = dir->entries.find(name);
    if (de == nullptr) co_return Errno{ENOENT};
    if (de->ino != child->ino) continue;  // replaced in between: look again
    if (!child->entries.empty()) co_return Errno{ENOTEMPTY};
    dir->entries.erase(name);
    const Timespec t = now();
    child->nlink = 0;
    child->ctime = t;
    --dir->nlink;
    dir->mtime = dir->ctime = t;
    evict_if_unused(*child);
    co_return ok_status();
  }
}

}  // namespace sandfs::memfs
