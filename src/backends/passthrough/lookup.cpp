// lookup and the pieces readdirplus shares with it.
//
// A lookup runs in three steps so a batch of them (readdirplus) pays for one blocking job:
//   probe_child   find what the name is now (ring ops only): openat2 beneath + statx of the new
//                 fd, or, where that statx is not in-core, one statx by name when the name is
//                 already known to lead to a tracked entry
//   read_records  the ownership records that are not cached, all in one run_blocking job
//   commit_probe  count the lookup in the store and build the Entry
#include <fcntl.h>

#include <vector>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "backends/passthrough/probe.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

Task<void> PassthroughFs::probe_child(const std::shared_ptr<Inode>& parent, const HostFd& pfd,
                                      Probe& p) {
  if (int err = check_name(p.name); err != 0) {
    p.error = err;
    co_return;
  }
  // A name we already know: one statx by name tells whether it still leads to the same object.
  // io_uring always hands that statx to a worker thread, though, while an O_PATH open of a name
  // in the dentry cache completes inline and a statx of the new fd is in-core: where the host
  // filesystem allows the latter (in_core_stat_), known names take the open path too.
  if (std::shared_ptr<Inode> known =
          in_core_stat_ ? nullptr : store_.find_alias(parent->id, p.name)) {
    Result<struct statx> stx = co_await stat_at(pfd.get(), p.name.c_str());
    if (!stx) {
      p.error = stx.error();
      co_return;
    }
    if (InodeStore::same_object(*known, *stx, store_.id_for(*stx))) {
      p.stx = *stx;
      p.stat_ok = true;
      p.known = std::move(known);
    }
  }
  if (!p.known) {
    Result<SharedFd> fd = co_await open_beneath(pfd.get(), p.name.c_str(), O_PATH);
    if (!fd) {
      p.error = fd.error();
      co_return;
    }
    Result<struct statx> stx = co_await stat_fd((*fd)->get());
    if (!stx) {
      p.error = stx.error();
      co_return;
    }
    p.fd = std::move(*fd);
    p.stx = *stx;
    p.stat_ok = true;
    // Reached by a new name (a hard link, or a name the index lost): same entry, same cache.
    std::shared_ptr<Inode> tracked = store_.find(store_.id_for(p.stx));
    if (tracked && InodeStore::same_object(*tracked, p.stx, tracked->id)) p.known = tracked;
  }

  const uint32_t type = p.stx.stx_mode & S_IFMT;
  if (!policy_.records() || (type != S_IFREG && type != S_IFDIR)) {
    p.record.state = RecordCache::State::absent;
    p.record.note_host(p.stx);
    co_return;
  }
  if (p.known) {
    std::lock_guard lock(p.known->mu);
    if (p.known->record.valid_for(ctime_of(p.stx))) {
      p.record = p.known->record;
      if (p.record.state == RecordCache::State::corrupt) p.error = p.record.error;
      co_return;
    }
  }
  p.need_record = true;
  if (p.fd) {
    p.record_fd = p.fd;
  } else {
    Result<SharedFd> fd = co_await fd_of(p.known);
    if (!fd) {
      p.error = fd.error();
      co_return;
    }
    p.record_fd = std::move(*fd);
  }
}

Task<void> PassthroughFs::read_records(std::span<Probe> probes) {
  bool any = false;
  for (const Probe& p : probes)
    any = any || (p.error == 0 && p.need_record);
  if (!any) co_return;
  if (probes.size() == 1) {
    // One lookup: one io ring getxattr, cheaper than a trip to the blocking pool; a batch
    // (readdirplus) shares one pool job instead.
    Probe& p = probes[0];
    if (p.error == 0 && p.need_record) {
      p.record_raw = co_await read_record_ring(*p.record_fd, p.record_buf);
    }
  }
  Result<long> done = 0L;
  if (probes.size() > 1) {
    done = co_await io::Ring::current().run_blocking([&]() -> long {
      for (Probe& p : probes) {
        if (p.error == 0 && p.need_record) {
          p.record_raw = read_record_raw(*p.record_fd, p.record_buf);
        }
      }
      return 0;
    });
  }
  for (Probe& p : probes) {
    if (p.error != 0 || !p.need_record) continue;
    if (!done) {
      p.error = done.error();
      continue;
    }
    p.record = make_record_cache(p.record_raw, p.record_buf, p.stx);
    if (p.record.state == RecordCache::State::corrupt) {
      if (p.known && p.record.error == EIO) {
        std::lock_guard lock(p.known->mu);
        p.known->record = p.record;
      }
      p.error = p.record.error;
    }
  }
}

Result<Entry> PassthroughFs::commit_probe(const std::shared_ptr<Inode>& parent, Probe& p) {
  if (p.error != 0) return Errno{p.error};
  std::shared_ptr<Inode> n = store_.acquire(p.stx, p.fd, parent, p.name, &p.record);
  return entry_of(*n, p.stx, p.record);
}

Result<Entry> PassthroughFs::commit_degraded(const std::shared_ptr<Inode>& parent, Probe& p) {
  if (!p.stat_ok || p.record.state != RecordCache::State::corrupt) return Errno{p.error};
  std::shared_ptr<Inode> n = store_.acquire(p.stx, p.fd, parent, p.name, &p.record);
  Entry e;
  e.ino = n->id;
  e.generation = n->generation;
  e.attr.ino = n->id;
  e.attr.mode = n->host_type;  // a type the kernel accepts, no permissions, nothing else
  e.attr.nlink = 1;
  return e;  // zero timeouts: every use comes back to us, and gets EIO
}

Task<Result<Entry>> PassthroughFs::lookup_child(const std::shared_ptr<Inode>& parent,
                                                const HostFd& pfd, std::string_view name,
                                                bool negative_ok) {
  Probe p;
  p.name = std::string(name);
  co_await probe_child(parent, pfd, p);
  co_await read_records(std::span<Probe>(&p, 1));
  if (p.error == ENOENT && negative_ok && entry_timeout_.count() > 0) {
    Entry negative;
    negative.entry_timeout = entry_timeout_;
    co_return negative;
  }
  co_return commit_probe(parent, p);
}

Task<Result<std::pair<std::shared_ptr<Inode>, SharedFd>>> PassthroughFs::dir_and_fd(InodeId ino) {
  Result<std::shared_ptr<Inode>> dir = inode_of(ino);
  if (!dir) co_return Errno{dir.error()};
  if (!(*dir)->is_dir()) co_return Errno{ENOTDIR};
  Result<SharedFd> fd = co_await fd_of(*dir);
  if (!fd) co_return Errno{fd.error()};
  co_return std::make_pair(std::move(*dir), std::move(*fd));
}

Task<Result<Entry>> PassthroughFs::lookup(const RequestContext&, InodeId parent,
                                          std::string_view name) {
  if (int err = check_name(name); err != 0) co_return Errno{err};
  auto dir = co_await dir_and_fd(parent);
  if (!dir) co_return Errno{dir.error()};
  co_return co_await lookup_child(dir->first, *dir->second, name, true);
}

}  // namespace sandfs::passthrough
