// Removing and moving names: unlink, rmdir, rename.
//
// Before a name that leads to a tracked entry goes away, the entry's O_PATH fd is made sure of
// (cached, or re-walked while the name still exists); when the name was the entry's last known
// one the fd is pinned, so the guest can keep using the inode (open, getattr) after unlink, as
// POSIX promises for open files and the kernel assumes for inodes it still holds.
#include <fcntl.h>
#include <linux/fs.h>  // RENAME_*

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

namespace {

// What removing the last name of a regular file gives back to the quota.
uint64_t freed_bytes(const Result<struct statx>& stx) {
  if (!stx || (stx->stx_mode & S_IFMT) != S_IFREG || stx->stx_nlink != 1) return 0;
  return stx->stx_size;
}

}  // namespace

Task<Status> PassthroughFs::remove_name(InodeId parent, std::string_view name, bool dir) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (Status w = check_writable(); !w) co_return w;
  auto d = co_await dir_and_fd(parent);
  if (!d) co_return Errno{d.error()};
  const auto& [pnode, pfd] = *d;
  const std::string n(name);

  std::shared_ptr<Inode> victim = store_.find_alias(pnode->id, name);
  SharedFd victim_fd;
  if (victim) {
    Result<SharedFd> fd = co_await fd_of(victim);
    if (fd) victim_fd = std::move(*fd);
  }
  Result<struct statx> before = Errno{ENOENT};
  if (quota_ && !dir) before = co_await stat_at(pfd->get(), n.c_str());

  const DirChange change = co_await begin_dir_change(pnode, pfd);
  Status st = co_await io::Ring::current().unlinkat(pfd->get(), n.c_str(), dir ? AT_REMOVEDIR : 0);
  if (!st) co_return st;
  co_await end_dir_change(change);

  std::shared_ptr<Inode> gone = store_.remove_alias(pnode->id, name);
  if (gone && gone == victim && victim_fd) {
    bool last = false;
    {
      std::lock_guard lock(gone->mu);
      last = gone->aliases.empty();
    }
    if (last) store_.pin_fd(gone, victim_fd);
  }
  if (quota_) quota_->release(freed_bytes(before));
  co_return ok_status();
}

Task<Status> PassthroughFs::unlink(const RequestContext&, InodeId parent, std::string_view name) {
  co_return co_await remove_name(parent, name, false);
}

Task<Status> PassthroughFs::rmdir(const RequestContext&, InodeId parent, std::string_view name) {
  co_return co_await remove_name(parent, name, true);
}

Task<Status> PassthroughFs::rename(const RequestContext&, InodeId parent, std::string_view name,
                                   InodeId new_parent, std::string_view new_name, uint32_t flags) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  if (int err = check_name(new_name); err != 0) co_return Errno{err};
  if ((flags & ~static_cast<uint32_t>(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) {
    co_return Errno{EINVAL};  // RENAME_WHITEOUT would need a real character device on the host
  }
  if ((flags & RENAME_NOREPLACE) != 0 && (flags & RENAME_EXCHANGE) != 0) co_return Errno{EINVAL};
  if (Status w = check_writable(); !w) co_return w;
  auto from = co_await dir_and_fd(parent);
  if (!from) co_return Errno{from.error()};
  auto to = co_await dir_and_fd(new_parent);
  if (!to) co_return Errno{to.error()};
  const bool exchange = (flags & RENAME_EXCHANGE) != 0;
  const std::string n1(name);
  const std::string n2(new_name);

  // The object the target name leads to loses that name: keep it reachable.
  std::shared_ptr<Inode> replaced = exchange ? nullptr : store_.find_alias(to->first->id, new_name);
  SharedFd replaced_fd;
  if (replaced) {
    Result<SharedFd> fd = co_await fd_of(replaced);
    if (fd) replaced_fd = std::move(*fd);
  }
  Result<struct statx> target = Errno{ENOENT};
  if (quota_ && !exchange) target = co_await stat_at(to->second->get(), n2.c_str());

  const DirChange from_change = co_await begin_dir_change(from->first, from->second);
  std::optional<DirChange> to_change;
  if (to->first != from->first) to_change = co_await begin_dir_change(to->first, to->second);
  Status st = co_await io::Ring::current().renameat2(from->second->get(), n1.c_str(),
                                                     to->second->get(), n2.c_str(), flags);
  if (!st) co_return st;
  co_await end_dir_change(from_change);
  if (to_change) co_await end_dir_change(*to_change);

  store_.rename_alias(from->first, name, to->first, new_name, exchange);
  if (replaced && replaced_fd) {
    bool last = false;
    {
      std::lock_guard lock(replaced->mu);
      last = replaced->aliases.empty();
    }
    if (last) store_.pin_fd(replaced, replaced_fd);
  }
  // Two names of one file have nlink >= 2: renaming one onto the other frees nothing.
  if (quota_) quota_->release(freed_bytes(target));
  co_return ok_status();
}

}  // namespace sandfs::passthrough
