// Space management on the sparse page map: fallocate, lseek (SEEK_DATA / SEEK_HOLE) and
// copy_file_range.
#include <fcntl.h>  // FALLOC_FL_*, from linux/falloc.h
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "backends/memfs/memfs.hpp"

namespace sandfs::memfs {

namespace {

constexpr uint64_t max_offset = std::numeric_limits<int64_t>::max();
// The largest single transfer Linux makes (MAX_RW_COUNT); also keeps the count inside the
// 32-bit size of the reply.
constexpr uint64_t max_transfer = std::numeric_limits<int32_t>::max() & ~(page_size - 1);

// fallocate on a non-regular file, as vfs_fallocate answers.
int fallocate_errno(const Node& n) {
  if (n.is_dir()) return EISDIR;
  if (n.type == S_IFIFO) return ESPIPE;
  return ENODEV;
}

int data_errno(const Node& n) {
  return n.is_dir() ? EISDIR : EINVAL;
}

}  // namespace

Task<Status> MemFs::fallocate(const RequestContext&, InodeId ino, HandleId fh, uint64_t offset,
                              uint64_t length, uint32_t mode) {
  if (length == 0 || offset > max_offset || length > max_offset) co_return Errno{EINVAL};
  const bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
  const uint32_t op = mode & ~FALLOC_FL_KEEP_SIZE;
  if (op != 0 && op != FALLOC_FL_PUNCH_HOLE && op != FALLOC_FL_ZERO_RANGE) {
    co_return Errno{EOPNOTSUPP};
  }
  if (op == FALLOC_FL_PUNCH_HOLE && !keep_size) co_return Errno{EOPNOTSUPP};

  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  if (!(*h)->writable()) co_return Errno{EBADF};
  Node& n = *(*h)->node;
  if (!n.is_reg()) co_return Errno{fallocate_errno(n)};
  if (length > max_offset - offset) co_return Errno{EFBIG};
  const uint64_t end = offset + length;

  std::unique_lock lock(n.mu);
  const Timespec t = now();
  if (op == FALLOC_FL_PUNCH_HOLE) {
    release_pages(n.pages.punch(offset, length));
    n.mtime = n.ctime = t;
    co_return ok_status();
  }

  // Allocate (mode 0) or zero (ZERO_RANGE): both leave every page of the range allocated, so
  // later writes there cannot fail with ENOSPC.
  const uint64_t need = n.pages.missing(offset, length) * page_size;
  if (!bytes_.try_reserve(need)) co_return Errno{ENOSPC};
  Reservation reserved(bytes_, need);
  n.pages.allocate(offset, length, false);
  reserved.commit();
  const bool grows = !keep_size && end > n.size;
  if (grows) n.size = end;
  if (op == FALLOC_FL_ZERO_RANGE) {
    n.pages.zero(offset, length);
    n.mtime = t;
  } else if (grows) {
    n.mtime = t;
  }
  n.ctime = t;
  co_return ok_status();
}

Task<Result<uint64_t>> MemFs::lseek(const RequestContext&, InodeId ino, HandleId fh,
                                    uint64_t offset, uint32_t whence) {
  Result<std::shared_ptr<Handle>> h = find_handle(fh, ino, false);
  if (!h) co_return Errno{h.error()};
  Node& n = *(*h)->node;
  if (!n.is_reg()) co_return Errno{data_errno(n)};

  std::shared_lock lock(n.mu);
  switch (whence) {
    case SEEK_SET:
      if (offset > max_offset) co_return Errno{EINVAL};
      co_return offset;
    case SEEK_END: {
      // The kernel keeps file positions and resolves SEEK_SET/CUR/END itself; answer SEEK_END
      // anyway for a guest that asks. The offset is a signed value in an unsigned field.
      const auto delta = static_cast<int64_t>(offset);
      if (delta < 0 ? static_cast<uint64_t>(-(delta + 1)) + 1 > n.size
                    : static_cast<uint64_t>(delta) > max_offset - n.size) {
        co_return Errno{EINVAL};
      }
      co_return n.size + static_cast<uint64_t>(delta);
    }
    case SEEK_DATA: {
      if (offset >= n.size) co_return Errno{ENXIO};
      std::optional<uint64_t> data = n.pages.next_data(offset);
      if (!data || *data >= n.size) co_return Errno{ENXIO};
      co_return *data;
    }
    case SEEK_HOLE:
      if (offset >= n.size) co_return Errno{ENXIO};
      // End of file counts as a hole.
      co_return std::min(n.pages.next_hole(offset), n.size);
    default:
      co_return Errno{EINVAL};
  }
}

Task<Result<size_t>> MemFs::copy_file_range(const RequestContext& ctx, InodeId ino_in,
                                            HandleId fh_in, uint64_t off_in, InodeId ino_out,
                                            HandleId fh_out, uint64_t off_out, uint64_t len,
                                            uint64_t flags) {
  if (flags != 0) co_return Errno{EINVAL};
  Result<std::shared_ptr<Handle>> hin = find_handle(fh_in, ino_in, false);
  if (!hin) co_return Errno{hin.error()};
  Result<std::shared_ptr<Handle>> hout = find_handle(fh_out, ino_out, false);
  if (!hout) co_return Errno{hout.error()};
  if (!(*hin)->readable() || !(*hout)->writable() || (*hout)->append()) co_return Errno{EBADF};
  Node& src = *(*hin)->node;
  Node& dst = *(*hout)->node;
  if (!src.is_reg()) co_return Errno{data_errno(src)};
  if (!dst.is_reg()) co_return Errno{data_errno(dst)};
  if (off_in > max_offset || off_out > max_offset) co_return Errno{EINVAL};

  // Both are regular files, which never hold another lock while waiting: ascending id is enough.
  std::unique_lock<std::shared_mutex> dst_lock(dst.mu, std::defer_lock);
  std::shared_lock<std::shared_mutex> src_lock(src.mu, std::defer_lock);
  if (&src == &dst) {
    dst_lock.lock();
  } else if (src.ino < dst.ino) {
    src_lock.lock();
    dst_lock.lock();
  } else {
    dst_lock.lock();
    src_lock.lock();
  }

  if (off_in >= src.size) co_return size_t{0};
  len = std::min({len, src.size - off_in, max_transfer});
  if (len == 0) co_return size_t{0};
  if (len > max_offset - off_out) co_return Errno{EFBIG};

  const uint64_t need =
      PageMap::copy_missing(src.pages, off_in, dst.pages, off_out, len) * page_size;
  if (!bytes_.try_reserve(need)) co_return Errno{ENOSPC};
  Reservation reserved(bytes_, need);
  PageMap::copy_allocate(src.pages, off_in, dst.pages, off_out, len);
  reserved.commit();
  PageMap::copy(src.pages, off_in, dst.pages, off_out, len);

  dst.size = std::max(dst.size, off_out + len);
  const Timespec t = now();
  dst.mtime = dst.ctime = t;
  // The request carries no kill-suidgid flag; a non-root writer loses the bits as with write().
  if (ctx.uid != 0) dst.mode = kill_suidgid_bits(dst.mode);
  co_return static_cast<size_t>(len);
}

}  // namespace sandfs::memfs
