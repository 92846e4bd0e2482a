// Directory handles and listings: opendir, readdir, readdirplus, releasedir, fsyncdir.
//
// ## Offsets
// The offsets handed to the kernel are the host's getdents64 d_off cookies. ext4 (hash order),
// xfs, btrfs and tmpfs keep those valid while entries come and go, so a listing resumed at any
// offset it gave out continues after that entry: the handle seeks its host fd there when it is not
// already there. No per-handle snapshot is kept (memory stays bounded by one batch per handle,
// whatever the directory's size).
//
// ## Batches
// Entries are read 32 KiB of getdents64 at a time, in one blocking job, and kept in the handle
// until sent: a kernel READDIR buffer (4 KiB) takes a few dozen, so most calls are answered from
// the batch without any syscall.
//
// ## The guest's d_type
// A regular host file may be a FIFO, socket, device or (strict mode) symlink for the guest, so
// plain readdir looks at the record of each regular-file entry: from the inode entry's cache when
// the object is tracked, else with one getxattrat(dir, name) inside the same blocking job. A
// 100,000-entry directory costs about 3,000 jobs and one xattr read per regular file not already
// known; directories and host symlinks cost nothing extra. (The reference reports the host type
// here, so `find -type l` missed strict-mode symlinks.)
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "backends/passthrough/probe.hpp"
#include "core/io/ring.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::passthrough {

namespace {

constexpr size_t getdents_buffer = 32 * 1024;
constexpr size_t readdirplus_batch = 32;

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

uint8_t dtype_of(uint32_t mode) {
  return static_cast<uint8_t>((mode & S_IFMT) >> 12);
}

}  // namespace

Task<Result<OpenReply>> PassthroughFs::opendir(const RequestContext&, InodeId ino, uint32_t) {
  Result<std::shared_ptr<Inode>> n = inode_of(ino);
  if (!n) co_return Errno{n.error()};
  if (!(*n)->is_dir()) co_return Errno{ENOTDIR};
  Result<SharedFd> fd = co_await fd_of(*n);
  if (!fd) co_return Errno{fd.error()};
  Result<SharedFd> io = co_await reopen(proc_fd_dir_, **fd, O_RDONLY | O_DIRECTORY);
  if (!io) co_return Errno{io.error()};
  auto h = std::make_shared<DirHandle>();
  h->inode = std::move(*n);
  h->fd = std::move(*io);
  const HandleId fh = next_handle();
  dirs_.insert(fh, std::move(h));
  co_return OpenReply{fh, open_reply_flags(true)};
}

namespace {

// Reads the batch of entries that follows `offset` into `out` (blocking: runs on the pool).
// With `types`, regular files get the d_type their record gives them. Returns 0 or -errno.
struct Fetcher {
  DirHandle& h;
  const InodeStore& store;
  bool types;         // resolve the guest's d_type of regular files from their records
  bool typed_result;  // what the batch's dtypes are then: the guest's (or not needed)
  const char* xattr;
  bool strict;

  long operator()(uint64_t offset, DirBatch& out) const {
    out.names.clear();
    out.entries.clear();
    out.next = 0;
    out.after = offset;
    out.valid = true;
    out.typed = typed_result;
    std::vector<char> buf(getdents_buffer);
    long n = 0;
    {
      std::lock_guard lock(h.pos_mu);
      const int fd = h.fd->get();
      if (h.host_pos != offset) {
        if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) return host::neg_errno();
        h.host_pos = offset;
      }
      n = ::getdents64(fd, buf.data(), buf.size());
      if (n < 0) return host::neg_errno();
      for (long pos = 0; pos < n;) {
        const auto* d = reinterpret_cast<const linux_dirent64*>(buf.data() + pos);
        const size_t len = strnlen(d->d_name, d->d_reclen - offsetof(linux_dirent64, d_name));
        DirEntryRef e;
        e.host_ino = d->d_ino;
        e.next_offset = static_cast<uint64_t>(d->d_off);
        e.name_offset = static_cast<uint32_t>(out.names.size());
        e.name_length = static_cast<uint16_t>(len);
        e.dtype = d->d_type;
        out.names.insert(out.names.end(), d->d_name, d->d_name + len);
        out.entries.push_back(e);
        h.host_pos = e.next_offset;
        pos += d->d_reclen;
      }
    }
    if (!types) return 0;
    const int dirfd = h.fd->get();
    for (DirEntryRef& e : out.entries) {
      if (e.dtype != DT_REG) continue;
      // Known objects: their cached record (the type of an object never changes).
      if (std::shared_ptr<Inode> known = store.find(store.peek_id(*h.inode, e.host_ino))) {
        std::lock_guard lock(known->mu);
        if (known->host.ino == e.host_ino && known->record.state != RecordCache::State::unknown) {
          if (known->record.state == RecordCache::State::present) {
            e.dtype = dtype_of(known->record.record.mode);
          }
          continue;
        }
      }
      const std::string name(out.name(e));
      char rec[record_read_buffer];
      const long r =
          host::getxattrat(dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, xattr, rec, sizeof rec);
      Result<std::optional<Record>> parsed =
          classify_record_read(r, std::span<const char>(rec, sizeof rec), strict);
      // A corrupt or unreadable record shows as a regular file here; lookup reports the error.
      if (parsed && *parsed && record_fits(**parsed, S_IFREG)) e.dtype = dtype_of((*parsed)->mode);
    }
    return 0;
  }
};

}  // namespace

Task<Status> PassthroughFs::readdir(const RequestContext&, InodeId ino, HandleId fh,
                                    uint64_t offset, DirSink& sink) {
  Result<std::shared_ptr<DirHandle>> found = dir_handle(fh, ino);
  if (!found) co_return Errno{found.error()};
  DirHandle& h = **found;
  const Inode& dir = *h.inode;
  io::Ring& ring = io::Ring::current();
  const Fetcher fetch{
      h, store_, policy_.records(), true, config_.stat_xattr.c_str(), policy_.strict()};

  DirBatch batch;
  {
    std::lock_guard lock(h.batch_mu);
    // A batch read for readdirplus carries host d_types: plain readdir reads its own.
    if (h.batch.valid && h.batch.typed && h.batch.after == offset) batch = std::move(h.batch);
    h.batch.valid = false;
  }
  for (;;) {
    if (!batch.valid || batch.empty()) {
      const uint64_t after = batch.valid ? batch.after : offset;
      Result<long> r = co_await ring.run_blocking([&]() -> long { return fetch(after, batch); });
      if (!r) co_return Errno{r.error()};
      if (batch.entries.empty()) co_return ok_status();  // end of the directory
    }
    while (!batch.empty()) {
      const DirEntryRef& e = batch.entries[batch.next];
      const std::string_view name = batch.name(e);
      InodeId id = 0;
      if (name == ".") {
        id = dir.id;
      } else if (name == ".." && dir.id == fuse::root_id) {
        id = fuse::root_id;  // the root's parent is not ours to show
      } else {
        id = store_.peek_id(dir, e.host_ino);
        if (id == 0) id = e.host_ino;
      }
      if (!sink.add(name, id, e.dtype, e.next_offset)) {
        std::lock_guard lock(h.batch_mu);
        h.batch = std::move(batch);
        co_return ok_status();
      }
      batch.after = e.next_offset;
      ++batch.next;
    }
  }
}

Task<void> PassthroughFs::probe_all(const std::shared_ptr<Inode>& dir, const HostFd& dir_fd,
                                    std::span<Probe> probes) {
  // All at once: io_uring punts statx to its workers, so one at a time would pay a worker
  // wake-up per entry; together they overlap and their completions arrive in batches.
  auto executor = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer all_done(executor, boost::asio::steady_timer::time_point::max());
  size_t left = probes.size();
  for (Probe& p : probes) {
    boost::asio::co_spawn(executor, probe_child(dir, dir_fd, p), [&](std::exception_ptr e) {
      if (e) p.error = ENOMEM;  // only allocation can throw in there
      if (--left == 0) all_done.cancel();
    });
  }
  if (left > 0) {
    boost::system::error_code ignored;
    co_await all_done.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  }
}

Task<Status> PassthroughFs::readdirplus(const RequestContext&, InodeId ino, HandleId fh,
                                        uint64_t offset, DirPlusSink& sink) {
  Result<std::shared_ptr<DirHandle>> found = dir_handle(fh, ino);
  if (!found) co_return Errno{found.error()};
  DirHandle& h = **found;
  const std::shared_ptr<Inode> dir = h.inode;
  io::Ring& ring = io::Ring::current();
  const Fetcher fetch{h, store_, false, !policy_.records(), nullptr, false};
  Result<SharedFd> dir_fd = co_await fd_of(dir);
  if (!dir_fd) co_return Errno{dir_fd.error()};

  DirBatch batch;
  {
    std::lock_guard lock(h.batch_mu);
    if (h.batch.valid && h.batch.after == offset) batch = std::move(h.batch);
    h.batch.valid = false;
  }
  std::vector<Probe> probes;
  bool emitted = false;
  auto keep_batch = [&] {
    std::lock_guard lock(h.batch_mu);
    h.batch = std::move(batch);
  };
  for (;;) {
    if (!batch.valid || batch.empty()) {
      const uint64_t after = batch.valid ? batch.after : offset;
      Result<long> r = co_await ring.run_blocking([&]() -> long { return fetch(after, batch); });
      if (!r) co_return Errno{r.error()};
      if (batch.entries.empty()) co_return ok_status();
    }
    // "." and ".." carry only their id: the kernel takes no reference for them.
    while (!batch.empty()) {
      const DirEntryRef& e = batch.entries[batch.next];
      const std::string_view name = batch.name(e);
      if (name != "." && name != "..") break;
      Entry dot;
      dot.ino =
          name == "." || dir->id == fuse::root_id ? dir->id : store_.peek_id(*dir, e.host_ino);
      if (dot.ino == 0) dot.ino = e.host_ino;
      if (!sink.add(name, dot, DT_DIR, e.next_offset)) {
        keep_batch();
        co_return ok_status();
      }
      batch.after = e.next_offset;
      ++batch.next;
    }
    if (batch.empty()) continue;

    // Look up the next few entries together: their record reads share one blocking job.
    probes.clear();
    for (size_t i = batch.next; i < batch.entries.size() && probes.size() < readdirplus_batch;
         ++i) {
      const DirEntryRef& e = batch.entries[i];
      const std::string_view name = batch.name(e);
      if (name == "." || name == "..") break;
      Probe& p = probes.emplace_back();
      p.name = std::string(name);
      p.next_offset = e.next_offset;
      p.host_dtype = e.dtype;
      p.host_ino = e.host_ino;
    }
    co_await probe_all(dir, **dir_fd, probes);
    co_await read_records(probes);

    for (Probe& p : probes) {
      Result<Entry> entry = commit_probe(dir, p);
      if (!entry && entry.error() != ENOENT && entry.error() != ENOTDIR) {
        // A corrupt record: the name is listed (glibc hides a d_ino of 0, so it gets its real
        // id and a reference) with nothing cached, and every use of it answers EIO.
        entry = commit_degraded(dir, p);
      }
      if (!entry && (entry.error() == ENOENT || entry.error() == ENOTDIR)) {
        // Gone since the host listed it: skip it.
        batch.after = p.next_offset;
        ++batch.next;
        continue;
      }
      if (!entry) {
        // EMFILE, EACCES, ...: end this reply here; the next call retries from this entry.
        keep_batch();
        if (emitted) co_return ok_status();
        co_return Errno{entry.error()};
      }
      const Entry& out = *entry;
      const uint32_t dtype = dtype_of(out.attr.mode);
      if (!sink.add(p.name, out, dtype, p.next_offset)) {
        if (out.ino != 0) store_.forget(out.ino, 1);
        keep_batch();
        co_return ok_status();
      }
      batch.after = p.next_offset;
      ++batch.next;
      emitted = true;
    }
  }
}

Task<Status> PassthroughFs::releasedir(const RequestContext&, InodeId ino, HandleId fh) {
  Result<std::shared_ptr<DirHandle>> h = dir_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  if (!dirs_.erase(fh)) co_return Errno{EBADF};
  co_return ok_status();
}

Task<Status> PassthroughFs::fsyncdir(const RequestContext&, InodeId ino, HandleId fh,
                                     bool datasync) {
  Result<std::shared_ptr<DirHandle>> h = dir_handle(fh, ino);
  if (!h) co_return Errno{h.error()};
  co_return co_await io::Ring::current().fsync((*h)->fd->get(), datasync);
}

}  // namespace sandfs::passthrough
