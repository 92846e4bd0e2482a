// The file data path: open, read, write, flush, release, fsync.
//
// read and write copy directly between the pages and the transport's iovecs. A write reserves the
// capacity of every page it will add before touching anything: when only part fits it writes that
// part and returns the short count, and when nothing fits it fails with ENOSPC leaving the file
// exactly as it was.
#include <fcntl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"

namespace sandfs::memfs {

namespace {

constexpr uint64_t max_offset = std::numeric_limits<int64_t>::max();

// read/write/lseek/copy_file_range on something that is not a regular file.
int data_errno(const Node& n) {
  return n.is_dir() ? EISDIR : EINVAL;
}

}  // namespace

Result<OpenReply> MemFs::open_locked(const std::shared_ptr<Node>& n, uint32_t flags,
                                     bool kill_suidgid) {
  if (n->dead) return Errno{EBADF};
  if (n->is_dir()) return Errno{EISDIR};
  if (n->type == S_IFLNK) return Errno{ELOOP};
  if (writeback_.load(std::memory_order_relaxed)) {
    // With a writeback cache the kernel reads pages back to fill partial writes, and computes
    // append offsets itself from its own idea of the size.
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~static_cast<uint32_t>(O_APPEND);
  }

  const HandleId fh = next_fh_.fetch_add(1, std::memory_order_relaxed);
  handles_.insert(fh, std::make_shared<Handle>(Handle{n, flags, false}));
  ++n->open_handles;

  if ((flags & O_TRUNC) != 0 && n->is_reg()) {
    truncate_locked(*n, 0);
    const Timespec t = now();
    n->mtime = n->ctime = t;
    if (kill_suidgid) n->mode = kill_suidgid_bits(n->mode);
  }
  return OpenReply{fh, open_reply_flags(false)};
}

Task<Result<OpenReply>> MemFs::open(const RequestContext&, InodeId ino, uint32_t flags,
                                    bool kill_suidgid) {
  std::shared_ptr<Node> n = find_node(ino);
  if (!n) co_return Errno{EBADF};
  std::unique_lock lock(n->mu);
  co_return open_locked(n, flags, kill_suidgid);
}

Task<Result<size_t>> MemFs::read(const RequestContext&, InodeId ino, HandleId fh, uint64_t offset,
                                 uint32_t size, const IoVecs& dst) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  if (!(*h)->readable()) co_return Errno{EBADF};
  Node& n = *(*h)->node;
  if (!n.is_reg()) co_return Errno{data_errno(n)};

  IoVecCursor out(dst);
  std::shared_lock lock(n.mu);
  if (offset >= n.size) co_return size_t{0};
  const size_t len = std::min<uint64_t>({size, out.remaining(), n.size - offset});
  n.pages.read(offset, len, out);
  co_return len;
}

Task<Result<size_t>> MemFs::write(const RequestContext&, InodeId ino, HandleId fh, uint64_t offset,
                                  const IoVecs& src, bool kill_suidgid) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  if (!(*h)->writable()) co_return Errno{EBADF};
  Node& n = *(*h)->node;
  if (!n.is_reg()) co_return Errno{data_errno(n)};

  IoVecCursor in(src);
  uint64_t len = in.remaining();
  std::unique_lock lock(n.mu);
  if ((*h)->append()) offset = n.size;
  if (offset > max_offset || len > max_offset - offset) co_return Errno{EFBIG};
  if (len == 0) co_return size_t{0};

  uint64_t need = n.pages.missing(offset, len) * page_size;
  if (!bytes_.try_reserve(need)) {
    // POSIX: write as many bytes as there is room for, and fail only when not one fits. Not with
    // a writeback cache, though: the kernel ignores a short count when it flushes its pages, so
    // there the whole write must fail for the error to reach fsync.
    if (writeback_.load(std::memory_order_relaxed)) co_return Errno{ENOSPC};
    need = bytes_.reserve_up_to(need, page_size);
    len = n.pages.fit(offset, len, need / page_size);
    if (len == 0) {
      bytes_.release(need);
      co_return Errno{ENOSPC};
    }
  }
  Reservation reserved(bytes_, need);
  n.pages.allocate(offset, len, true);
  reserved.commit();

  n.pages.write(offset, len, in);
  n.size = std::max(n.size, offset + len);
  const Timespec t = now();
  n.mtime = n.ctime = t;
  if (kill_suidgid) n.mode = kill_suidgid_bits(n.mode);
  co_return static_cast<size_t>(len);
}

Task<Status> MemFs::flush(const RequestContext&, InodeId ino, HandleId fh, uint64_t) {
  // Nothing is buffered: data is in the pages once write() returns.
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  co_return ok_status();
}

Task<Status> MemFs::fsync(const RequestContext&, InodeId ino, HandleId fh, bool) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  co_return ok_status();
}

Task<Status> MemFs::release(const RequestContext&, InodeId ino, HandleId fh, uint32_t) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  // Two racing releases of one fh: only the one that removes it drops the open count.
  if (!handles_.erase(fh)) co_return Errno{EBADF};
  Node& n = *(*h)->node;
  std::unique_lock lock(n.mu);
  --n.open_handles;
  evict_if_unused(n);
  co_return ok_status();
}

}  // namespace sandfs::memfs
