// Attributes: getattr, setattr, readlink, access.
#include <unistd.h>

#include <limits>
#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::memfs {

namespace {

constexpr uint64_t max_offset = std::numeric_limits<int64_t>::max();
constexpr uint32_t nsec_per_sec = 1'000'000'000;

}  // namespace

Task<Result<AttrReply>> MemFs::getattr(const RequestContext&, InodeId ino,
                                       std::optional<HandleId>) {
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  std::shared_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  co_return attr_reply_of(*n);
}

Task<Result<AttrReply>> MemFs::setattr(const RequestContext& ctx, InodeId ino,
                                       const SetAttrIn& in) {
  using namespace fuse;
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  if ((in.valid & FATTR_FH) != 0 && in.fh) {
    Result<std::shared_ptr<Handle>> h = find_handle(*in.fh, ino, n->is_dir());
    if (!h) co_return Errno{h.error()};
  }
  const bool set_atime = (in.valid & (FATTR_ATIME | FATTR_ATIME_NOW)) != 0;
  const bool atime_now = (in.valid & FATTR_ATIME_NOW) != 0;
  const bool set_mtime = (in.valid & (FATTR_MTIME | FATTR_MTIME_NOW)) != 0;
  const bool mtime_now = (in.valid & FATTR_MTIME_NOW) != 0;
  if ((set_atime && !atime_now && in.atime.nsec >= nsec_per_sec) ||
      (set_mtime && !mtime_now && in.mtime.nsec >= nsec_per_sec) ||
      ((in.valid & FATTR_CTIME) != 0 && in.ctime.nsec >= nsec_per_sec)) {
    co_return Errno{EINVAL};
  }
  if ((in.valid & FATTR_SIZE) != 0) {
    if (n->is_dir()) co_return Errno{EISDIR};
    if (!n->is_reg()) co_return Errno{EINVAL};
    if (in.size > max_offset) co_return Errno{EFBIG};
  }

  // Everything is checked; from here on nothing fails (truncation only frees).
  std::unique_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  const Timespec t = now();
  if ((in.valid & FATTR_MODE) != 0) n->mode = n->type | (in.mode & 07777);
  if ((in.valid & FATTR_UID) != 0) n->uid = in.uid;
  if ((in.valid & FATTR_GID) != 0) n->gid = in.gid;
  // chown of a regular file by an unprivileged caller drops suid/sgid, as Linux does.
  if ((in.valid & (FATTR_UID | FATTR_GID)) != 0 && n->is_reg() && ctx.uid != 0) {
    n->mode = kill_suidgid_bits(n->mode);
  }
  if ((in.valid & FATTR_SIZE) != 0) {
    if (in.size != n->size) n->mtime = t;
    truncate_locked(*n, in.size);
  }
  if (set_atime) n->atime = atime_now ? t : in.atime;
  if (set_mtime) n->mtime = mtime_now ? t : in.mtime;
  n->ctime = (in.valid & FATTR_CTIME) != 0 ? in.ctime : t;
  if ((in.valid & FATTR_KILL_SUIDGID) != 0) n->mode = kill_suidgid_bits(n->mode);
  co_return attr_reply_of(*n);
}

Task<Result<std::string>> MemFs::readlink(const RequestContext&, InodeId ino) {
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  if (n->type != S_IFLNK) co_return Errno{EINVAL};
  std::shared_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  co_return n->target;
}

Task<Status> MemFs::access(const RequestContext& ctx, InodeId ino, uint32_t mask) {
  if ((mask & ~static_cast<uint32_t>(R_OK | W_OK | X_OK)) != 0) co_return Errno{EINVAL};
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  std::shared_lock lock(n->mu);
  if (n->dead) co_return Errno{EBADF};
  if (mask == F_OK) co_return ok_status();

  const uint32_t mode = n->mode;
  if (ctx.uid == 0) {
    // Root reads and writes anything; it may execute a file only if someone may.
    if ((mask & X_OK) != 0 && !n->is_dir() && (mode & 0111) == 0) co_return Errno{EACCES};
    co_return ok_status();
  }
  uint32_t granted = mode & 07;
  if (ctx.uid == n->uid) {
    granted = (mode >> 6) & 07;
  } else if (ctx.gid == n->gid) {
    granted = (mode >> 3) & 07;
  }
  if ((mask & granted) != mask) co_return Errno{EACCES};
  co_return ok_status();
}

}  // namespace sandfs::memfs
