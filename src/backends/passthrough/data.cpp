// The file data path: open, read, write, flush, release, fsync, fallocate, lseek,
// copy_file_range; and the quota charges and privilege clearing that go with it.
//
// read and write hand the transport's iovecs straight to preadv/pwritev on the host fd: the bytes
// move between the host file and the transport's buffers (guest memory, or the /dev/fuse buffer)
// with no copy in between.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

namespace {

constexpr uint64_t max_offset = std::numeric_limits<int64_t>::max();
constexpr size_t small_iov = 8;

// The first `size` bytes of `v`, as iovecs.
class IovPrefix {
 public:
  IovPrefix(const IoVecs& v, size_t size) {
    for (const iovec& e : v.iov) {
      if (size == 0) break;
      const size_t take = std::min(size, e.iov_len);
      if (take == 0) continue;
      push(iovec{e.iov_base, take});
      size -= take;
      total_ += take;
    }
  }
  std::span<const iovec> span() const {
    return heap_.empty() ? std::span<const iovec>(local_.data(), count_)
                         : std::span<const iovec>(heap_);
  }
  size_t total() const { return total_; }

 private:
  void push(const iovec& e) {
    if (heap_.empty() && count_ < small_iov) {
      local_[count_++] = e;
      return;
    }
    if (heap_.empty()) heap_.assign(local_.begin(), local_.begin() + count_);
    heap_.push_back(e);
  }
  std::array<iovec, small_iov> local_{};
  size_t count_ = 0;
  std::vector<iovec> heap_;
  size_t total_ = 0;
};

}  // namespace

// ---- quota ----

Task<Status> PassthroughFs::wait_quota_ready(const RequestContext& ctx) {
  if (!quota_ || quota_->ready()) co_return ok_status();
  // Only right after mount, while the tree is still being counted.
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  while (!quota_->ready()) {
    if (ctx.is_interrupted() || stopping_.load(std::memory_order_relaxed)) co_return Errno{EINTR};
    // A shared quota's counter may have gone away before it finished (abandon_count): then
    // this mount counts.
    if (quota_->claim_count()) {
      boost::asio::co_spawn(timer.get_executor(), measure_tree(shared_from_this()),
                            boost::asio::detached);
    }
    timer.expires_after(std::chrono::milliseconds(2));
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
  co_return ok_status();
}

Task<Result<uint64_t>> PassthroughFs::charge_to(Inode& n, uint64_t end, const RequestContext& ctx) {
  if (Status ready = co_await wait_quota_ready(ctx); !ready) co_return Errno{ready.error()};
  uint64_t cur = n.size.load(std::memory_order_relaxed);
  for (;;) {
    if (end <= cur) co_return cur;
    const uint64_t growth = end - cur;
    if (!quota_->try_charge(growth)) co_return Errno{ENOSPC};
    if (n.size.compare_exchange_strong(cur, end, std::memory_order_relaxed)) co_return cur;
    quota_->release(growth);  // someone else moved the size: charge against the new one
  }
}

void PassthroughFs::settle(Inode& n, uint64_t before, uint64_t charged_end, uint64_t actual) {
  if (actual >= charged_end) return;
  const uint64_t real_end = std::max(before, actual);
  uint64_t expected = charged_end;
  // Give back what was charged but not written, unless another writer built on our end already.
  if (n.size.compare_exchange_strong(expected, real_end, std::memory_order_relaxed)) {
    quota_->release(charged_end - real_end);
  }
}

// ---- privileges ----

Task<void> PassthroughFs::kill_priv(const std::shared_ptr<Inode>& n, const HostFd* io_fd) {
  io::Ring& ring = io::Ring::current();
  if (policy_.records()) {
    std::optional<Record> rec;
    bool unknown = false;
    {
      std::lock_guard lock(n->mu);
      if (n->record.state == RecordCache::State::present) rec = n->record.record;
      unknown = n->record.state == RecordCache::State::unknown;
    }
    if (unknown) {
      // Never looked at: read it now (rare: every lookup reads it).
      Result<SharedFd> fd = co_await fd_of(n);
      if (fd) {
        Result<struct statx> stx = co_await stat_fd((*fd)->get());
        if (stx) {
          Result<RecordCache> rc = co_await record_of(*n, **fd, *stx);
          if (rc && rc->state == RecordCache::State::present) rec = rc->record;
        }
      }
    }
    if (rec && has_suidgid(rec->mode)) {
      Record cleared = *rec;
      cleared.mode = kill_suidgid_bits(cleared.mode);
      Result<SharedFd> fd = co_await fd_of(n);
      if (fd) {
        Status st = co_await write_record(**fd, cleared);
        Result<struct statx> stx = co_await stat_fd((*fd)->get());
        if (st && stx) set_record(*n, cleared, *stx);
      }
    }
  }
  // The host's own bits: the host kernel clears setuid and security.capability itself when an
  // unprivileged process writes or truncates. A privileged server must do it, once per entry.
  if (!privileged_ || n->caps_checked.exchange(true)) co_return;
  Result<SharedFd> fd = co_await fd_of(n);
  if (!fd) co_return;
  const int fdn = io_fd != nullptr ? io_fd->get() : -1;
  const char* name = (*fd)->proc_name();
  Result<long> r = co_await ring.run_blocking([&]() -> long {
    long c = host::getxattrat(proc_fd_dir_, name, 0, "security.capability", nullptr, 0);
    if (c >= 0) host::removexattrat(proc_fd_dir_, name, 0, "security.capability");
    struct stat st {};
    if (fdn >= 0 && ::fstat(fdn, &st) == 0 && has_suidgid(st.st_mode)) {
      return ::fchmod(fdn, kill_suidgid_bits(st.st_mode) & 07777) == 0 ? 0 : host::neg_errno();
    }
    return 0;
  });
  (void)r;  // best effort: a failure leaves the bits as the host has them
  co_return;
}

// ---- open ----

Task<Result<OpenReply>> PassthroughFs::open(const RequestContext& ctx, InodeId ino, uint32_t flags,
                                            bool kill_suidgid) {
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  const std::shared_ptr<Inode>& node = *n;
  if (node->is_dir()) co_return Errno{EISDIR};
  if (node->host_type == S_IFLNK) co_return Errno{ELOOP};
  if (!node->is_reg()) co_return Errno{ENXIO};  // a host FIFO/device: never opened by us
  {
    std::lock_guard lock(node->mu);
    if (node->record.state == RecordCache::State::corrupt) co_return Errno{node->record.error};
    if (node->record.state == RecordCache::State::present &&
        node->record.record.type() != S_IFREG) {
      co_return Errno{node->record.record.type() == S_IFLNK ? ELOOP : ENXIO};
    }
  }
  const uint32_t host_flags = host_open_flags(flags);
  const bool truncate = (host_flags & O_TRUNC) != 0;
  if (config_.readonly && ((host_flags & O_ACCMODE) != O_RDONLY || truncate)) {
    co_return Errno{EROFS};
  }
  Result<SharedFd> fd = co_await fd_of(node);
  if (!fd) co_return Errno{fd.error()};
  uint64_t size_before = 0;
  if (truncate && quota_) {
    Result<struct statx> stx = co_await stat_fd((*fd)->get());
    if (stx) size_before = stx->stx_size;
  }
  Result<SharedFd> io = co_await reopen(proc_fd_dir_, **fd, host_flags);
  if (!io) co_return Errno{io.error()};
  if (truncate) {
    if (quota_) {
      quota_->release(size_before);
      node->size.store(0, std::memory_order_relaxed);
    }
    if (kill_suidgid) co_await kill_priv(node, io->get());
  }

  auto h = std::make_shared<FileHandle>();
  h->inode = node;
  h->fd = std::move(*io);
  h->flags = host_flags & ~static_cast<uint32_t>(O_TRUNC);
  const HandleId fh = next_handle();
  const OpenReply reply = file_open_reply(fh, *h);
  files_.insert(fh, std::move(h));
  (void)ctx;
  co_return reply;
}

// ---- read / write ----

Task<Result<size_t>> PassthroughFs::read(const RequestContext&, InodeId ino, HandleId fh,
                                         uint64_t offset, uint32_t size, const IoVecs& dst) {
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  if (!(*h)->readable()) co_return Errno{EBADF};
  if (offset > max_offset) co_return Errno{EINVAL};
  IovPrefix iov(dst, std::min<size_t>(size, dst.size));
  if (iov.total() == 0) co_return size_t{0};
  co_return co_await io::Ring::current().preadv((*h)->fd->get(), iov.span(), offset);
}

Task<Result<size_t>> PassthroughFs::write(const RequestContext& ctx, InodeId ino, HandleId fh,
                                          uint64_t offset, const IoVecs& src, bool kill_suidgid) {
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  const FileHandle& handle = **h;
  if (!handle.writable()) co_return Errno{EBADF};
  if (config_.readonly) co_return Errno{EROFS};
  IovPrefix iov(src, src.size);
  const uint64_t len = iov.total();
  if (offset > max_offset || len > max_offset - offset) co_return Errno{EFBIG};
  if (len == 0) co_return size_t{0};

  Inode& n = *handle.inode;
  uint64_t before = 0;
  uint64_t end = offset + len;
  if (quota_) {
    // An append lands at the end, wherever the guest thinks that is.
    if (handle.append()) end = n.size.load(std::memory_order_relaxed) + len;
    Result<uint64_t> charged = co_await charge_to(n, end, ctx);
    if (!charged) co_return Errno{charged.error()};
    before = *charged;
  }
  Result<size_t> w = co_await io::Ring::current().pwritev(handle.fd->get(), iov.span(), offset);
  if (quota_) settle(n, before, end, w ? end - len + *w : before);
  if (!w) co_return w;
  if (kill_suidgid) co_await kill_priv(handle.inode, handle.fd.get());
  co_return w;
}

Task<Status> PassthroughFs::flush(const RequestContext&, InodeId ino, HandleId fh, uint64_t) {
  // Nothing is buffered here: every write reached the host file when write() returned.
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  co_return ok_status();
}

Task<Status> PassthroughFs::release(const RequestContext&, InodeId ino, HandleId fh, uint32_t) {
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  // The fd closes when the last operation still using it lets go.
  if (!files_.erase(fh)) co_return Errno{EBADF};
  co_return ok_status();
}

Task<Status> PassthroughFs::fsync(const RequestContext&, InodeId ino, HandleId fh, bool datasync) {
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  co_return co_await io::Ring::current().fsync((*h)->fd->get(), datasync);
}

// ---- fallocate, lseek, copy_file_range ----

Task<Status> PassthroughFs::fallocate(const RequestContext& ctx, InodeId ino, HandleId fh,
                                      uint64_t offset, uint64_t length, uint32_t mode) {
  if (Status w = check_writable(); !w) co_return w;
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  const FileHandle& handle = **h;
  if (!handle.writable()) co_return Errno{EBADF};
  if (offset > max_offset || length > max_offset - offset) co_return Errno{EFBIG};
  io::Ring& ring = io::Ring::current();
  if (!quota_)
    co_return co_await ring.fallocate(handle.fd->get(), static_cast<int>(mode), offset, length);

  Inode& n = *handle.inode;
  Result<struct statx> stx = co_await stat_fd(handle.fd->get());
  if (!stx) co_return Errno{stx.error()};
  const uint64_t size = stx->stx_size;
  const uint64_t end = offset + length;
  uint64_t new_size = size;
  if ((mode & FALLOC_FL_COLLAPSE_RANGE) != 0) {
    new_size = length < size ? size - length : 0;
  } else if ((mode & FALLOC_FL_INSERT_RANGE) != 0) {
    new_size = size + length;
  } else if ((mode & FALLOC_FL_KEEP_SIZE) != 0) {
    // Blocks past the end that no size shows: not something a size-based cap can count.
    if ((mode & FALLOC_FL_PUNCH_HOLE) == 0 && end > size) co_return Errno{EOPNOTSUPP};
  } else {
    new_size = std::max(size, end);
  }
  n.size.store(size, std::memory_order_relaxed);
  uint64_t before = size;
  if (new_size > size) {
    Result<uint64_t> charged = co_await charge_to(n, new_size, ctx);
    if (!charged) co_return Errno{charged.error()};
    before = *charged;
  }
  Status st = co_await ring.fallocate(handle.fd->get(), static_cast<int>(mode), offset, length);
  if (new_size > size) {
    settle(n, before, new_size, st ? new_size : before);
  } else if (st && new_size < size) {
    quota_->release(size - new_size);
    n.size.store(new_size, std::memory_order_relaxed);
  }
  co_return st;
}

Task<Result<uint64_t>> PassthroughFs::lseek(const RequestContext&, InodeId ino, HandleId fh,
                                            uint64_t offset, uint32_t whence) {
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  if (offset > max_offset) co_return Errno{EINVAL};
  const int fd = (*h)->fd->get();
  // Positional I/O never uses the fd's own position, so moving it is harmless.
  Result<long> r = co_await io::Ring::current().run_blocking([=]() -> long {
    off_t o = ::lseek(fd, static_cast<off_t>(offset), static_cast<int>(whence));
    return o < 0 ? host::neg_errno() : static_cast<long>(o);
  });
  if (!r) co_return Errno{r.error()};
  co_return static_cast<uint64_t>(*r);
}

Task<Result<size_t>> PassthroughFs::copy_file_range(const RequestContext& ctx, InodeId ino_in,
                                                    HandleId fh_in, uint64_t off_in,
                                                    InodeId ino_out, HandleId fh_out,
                                                    uint64_t off_out, uint64_t len,
                                                    uint64_t flags) {
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  Result<std::shared_ptr<FileHandle>> in = file_handle(fh_in, ino_in);
  if (!in) co_return Errno{in.error()};
  Result<std::shared_ptr<FileHandle>> out = file_handle(fh_out, ino_out);
  if (!out) co_return Errno{out.error()};
  if (!(*in)->readable() || !(*out)->writable()) co_return Errno{EBADF};
  if (flags != 0) co_return Errno{EINVAL};
  co_return co_await copy_into(ctx, (*in)->fd->get(), true, off_in, **out, off_out, len);
}

int PassthroughFs::host_fd(InodeId ino, HandleId fh) const {
  Result<std::shared_ptr<FileHandle>> h = file_handle(fh, ino);
  if (!h || !(*h)->readable()) return -1;
  // The handle (and with it the fd) lives until release(), which the caller has not sent yet.
  return (*h)->fd->get();
}

Task<Result<size_t>> PassthroughFs::copy_from_host_fd(const RequestContext& ctx, int fd_in,
                                                      uint64_t off_in, InodeId ino_out,
                                                      HandleId fh_out, uint64_t off_out,
                                                      uint64_t len) {
  if (Status w = check_writable(); !w) co_return Errno{w.error()};
  if (fd_in < 0) co_return Errno{EBADF};
  Result<std::shared_ptr<FileHandle>> out = file_handle(fh_out, ino_out);
  if (!out) co_return Errno{out.error()};
  if (!(*out)->writable()) co_return Errno{EBADF};
  co_return co_await copy_into(ctx, fd_in, false, off_in, **out, off_out, len);
}

Task<Result<size_t>> PassthroughFs::copy_into(const RequestContext& ctx, int fd_in, bool own_fd,
                                              uint64_t off_in, const FileHandle& out,
                                              uint64_t off_out, uint64_t len) {
  if (off_in > max_offset || off_out > max_offset) co_return Errno{EINVAL};
  len = std::min<uint64_t>(len, max_offset - off_out);
  if (len == 0) co_return size_t{0};
  io::Ring& ring = io::Ring::current();

  Inode& dst = *out.inode;
  uint64_t before = 0;
  uint64_t end = 0;
  if (quota_) {
    // Charge for what the source can supply at most. Another backend's fd may live on a
    // filesystem that does not answer from memory.
    Result<struct statx> src_stx = Errno{EIO};
    if (own_fd) {
      src_stx = co_await stat_fd(fd_in);
    } else {
      src_stx = co_await ring.fstatx(fd_in, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_SIZE,
                                     io::Ring::Residency::unknown);
    }
    if (!src_stx) co_return Errno{src_stx.error()};
    const uint64_t avail = src_stx->stx_size > off_in ? src_stx->stx_size - off_in : 0;
    len = std::min(len, avail);
    if (len == 0) co_return size_t{0};
    end = off_out + len;
    Result<uint64_t> charged = co_await charge_to(dst, end, ctx);
    if (!charged) co_return Errno{charged.error()};
    before = *charged;
  }
  const int fd_out = out.fd->get();
  Result<long> r = co_await ring.run_blocking([=]() -> long {
    loff_t a = static_cast<loff_t>(off_in);
    loff_t b = static_cast<loff_t>(off_out);
    ssize_t n = ::copy_file_range(fd_in, &a, fd_out, &b, len, 0);
    return n < 0 ? host::neg_errno() : static_cast<long>(n);
  });
  if (quota_) settle(dst, before, end, r ? off_out + static_cast<uint64_t>(*r) : before);
  if (!r) co_return Errno{r.error()};
  co_return static_cast<size_t>(*r);
}

}  // namespace sandfs::passthrough
