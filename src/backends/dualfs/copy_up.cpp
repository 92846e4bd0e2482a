// Copy-up and directory promotion: giving a B node an A side.
//
// Contract (DualFs::upgrade):
// * Exactly once per node: the first trigger runs it under the node's Flight (flight.hpp); any
//   trigger arriving meanwhile waits for that flight without blocking its thread, then sees the
//   node already on A. A failed flight reports its error to its waiters; the next trigger tries
//   again.
// * Ancestors first: a node's parent directory is promoted (recursively, each under its own
//   flight) before the node is installed in it.
// * A directory is promoted by mkdir in A with B's permission bits, then B's xattrs, owner and
//   times. It stays merged: B's entries keep showing through.
// * Anything else is built in A's hidden staging directory (whiteouts.hpp: staging_name) under
//   a temporary name — a regular file's data (below); a symlink with B's target; a special file
//   with B's type and rdev — given B's xattrs,
//   owner, mode and times, and renamed into place in one A rename: a crash leaves either no copy
//   or a complete one (plus, at worst, a leftover temporary in the staging directory). With
//   `truncate` (O_TRUNC opens, truncation to zero) no data is copied.
// * A regular file's data: the copy first gets B's size, then B's data extents are copied
//   (SEEK_DATA/SEEK_HOLE through B's lseek; where B has no hole map everything is data), so holes
//   stay holes; a file of at most dense_copy_max bytes whose allocated blocks cover its size
//   has no holes and is copied in one pass from offset 0, without either step. When B's handle has
//   a host fd (Filesystem::host_fd) and A takes copies from one (Filesystem::copy_from_host_fd:
//   PassthroughFs over PassthroughFs), each extent goes by copy_file_range(2) in host_copy_chunk
//   pieces, each a job on the blocking pool. Otherwise, or from the first
//   EXDEV/EINVAL/EOPNOTSUPP/ENOSYS on (other host filesystems, a MemFs side), the bytes travel in
//   copy_chunk pieces through a buffer owned by this copy, each piece an awaited child read and
//   write. Either way every piece is awaited: other requests, on this mount and others, are served
//   between pieces.
// * The node keeps its DualFs inode number; its B pin is given back; B's name stays hidden
//   whatever the policy's lookup order: the copy carries copy_up_xattr (markers storage, regular
//   files), else B's name is whited out (whiteouts.hpp). Handles opened on
//   B before the copy-up keep reading B's object.
#include <sys/stat.h>
#include <sys/uio.h>

#include <fcntl.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "backends/dualfs/dualfs.hpp"
#include "backends/dualfs/flight.hpp"
#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::dualfs {

namespace {

// Copy-up works as the server: what it writes is B's owner and mode, not the caller's.
RequestContext server_ctx() {
  return RequestContext{};
}

// The largest file copied without its hole map when its blocks cover its size (copy_data).
constexpr uint64_t dense_copy_max = 64 * 1024;

bool unsupported(int e) {
  return e == EOPNOTSUPP || e == ENOSYS || e == ENOTSUP;
}

// copy_file_range(2) cannot copy between these two files (other filesystems, a kind of file it
// does not handle): not an error of the copy-up, which goes on through read() and write().
bool host_copy_refused(int e) {
  return e == EXDEV || e == EINVAL || unsupported(e);
}

}  // namespace

Task<Status> DualFs::upgrade(const NodePtr& n, bool truncate) {
  for (;;) {
    if (table_.view(*n).a != 0) co_return ok_status();
    bool leader = false;
    std::shared_ptr<Flight> flight = table_.claim_flight(n, leader);
    if (!leader) {
      Status waited = co_await flight->wait();
      if (!waited) co_return waited;
      continue;
    }
    Status s;
    if (table_.view(*n).a == 0) {
      const auto start = std::chrono::steady_clock::now();
      uint64_t data_size = 0;
      if (n->is_dir()) {
        s = co_await promote_now(n);
      } else {
        s = co_await copy_up_now(n, truncate, data_size);
      }
      // Reported before the waiters go on, so nothing has written the copy yet.
      if (std::shared_ptr<const EventSink> sink = event_sink()) {
        report_upgrade(*sink, n, start, s, data_size);
      }
    }
    table_.end_flight(n);
    flight->finish(s);
    co_return s;
  }
}

Task<Result<InodeId>> DualFs::a_dir_of(const NodePtr& parent) {
  Status s = co_await upgrade(parent, false);
  if (!s) co_return Errno{s.error()};
  const InodeId a = table_.view(*parent).a;
  if (a == 0) co_return Errno{EIO};
  co_return a;
}

Task<Status> DualFs::promote_now(const NodePtr& dir) {
  const InodeTable::View v = table_.view(*dir);
  if (v.b == 0) co_return Errno{EIO};
  NodePtr parent = table_.find(v.parent);
  if (!parent) co_return Errno{ENOENT};
  Result<InodeId> pa = co_await a_dir_of(parent);
  if (!pa) co_return Errno{pa.error()};
  const RequestContext root = server_ctx();
  Result<AttrReply> st = co_await config_.b->getattr(root, v.b, std::nullopt);
  if (!st) co_return Errno{st.error()};
  const std::string name = v.name;
  Result<Entry> made = co_await config_.a->mkdir(root, *pa, name, st->attr.mode & 07777, 0);
  InodeId a_ino = 0;
  if (made) {
    a_ino = made->ino;
    Status x = co_await copy_xattrs(v.b, a_ino);
    Status m = co_await copy_metadata(a_ino, st->attr, false);
    if (!x || !m) {
      config_.a->forget(a_ino, 1);
      Status undo = co_await config_.a->rmdir(root, *pa, name);
      (void)undo;
      co_return x ? m : x;
    }
  } else if (made.error() == EEXIST) {
    // Someone else (a host process, or an A directory from before) has it: use it.
    Result<Entry> there = co_await config_.a->lookup(root, *pa, name);
    if (!there) co_return Errno{there.error()};
    if (there->ino == 0) co_return Errno{ENOENT};
    if (!S_ISDIR(there->attr.mode)) {
      config_.a->forget(there->ino, 1);
      co_return Errno{EEXIST};
    }
    a_ino = there->ino;
  } else {
    co_return Errno{made.error()};
  }
  std::vector<ChildRef> drop;
  table_.set_side(dir, Side::a, a_ino, false, drop);
  give_back(drop);
  co_return ok_status();
}

Task<Result<InodeId>> DualFs::staging_dir() {
  {
    std::lock_guard lock(staging_mu_);
    if (staging_ != 0) co_return staging_;
  }
  const RequestContext root = server_ctx();
  const std::string name(staging_name);
  InodeId found = 0;
  for (int attempt = 0; attempt < 2 && found == 0; ++attempt) {
    Result<Entry> l = co_await config_.a->lookup(root, fuse::root_id, name);
    if (l && l->ino != 0) {
      found = l->ino;
      break;
    }
    if (!l && l.error() != ENOENT) co_return Errno{l.error()};
    Result<Entry> m = co_await config_.a->mkdir(root, fuse::root_id, name, 0700, 0);
    if (m) {
      found = m->ino;
    } else if (m.error() != EEXIST) {
      co_return Errno{m.error()};
    }
  }
  if (found == 0) co_return Errno{EIO};
  std::lock_guard lock(staging_mu_);
  if (staging_ != 0) {
    config_.a->forget(found, 1);  // a concurrent copy-up got there first
  } else {
    staging_ = found;
  }
  co_return staging_;
}

Task<Status> DualFs::copy_data(InodeId b_ino, InodeId a_ino, HandleId a_fh, const Attr& from) {
  const uint64_t size = from.size;
  const RequestContext root = server_ctx();
  Result<OpenReply> src = co_await config_.b->open(root, b_ino, O_RDONLY, false);
  if (!src) co_return Errno{src.error()};
  CopyJob job{b_ino, src->fh, a_ino, a_fh};
  job.size = size;
  // A small file whose allocated blocks cover its size has no hole to keep: its bytes go in one
  // pass, without setting the size first or asking B for its hole map (three host jobs less).
  job.dense = size <= dense_copy_max && from.blocks * 512 >= size;
  // copy_file_range between the two host files when both sides have them (copy_up.hpp).
  job.host_in = config_.host_copy ? config_.b->host_fd(b_ino, job.b_fh) : -1;
  Status status = co_await copy_extents(job, size);
  Status released = co_await config_.b->release(root, b_ino, job.b_fh, O_RDONLY);
  (void)released;
  co_return status;
}

Task<Status> DualFs::copy_extents(CopyJob& job, uint64_t size) {
  const RequestContext root = server_ctx();
  if (job.dense) {
    Result<uint64_t> reached = co_await copy_range(job, 0, size);
    if (!reached) co_return Errno{reached.error()};
    co_return ok_status();
  }
  // The copy gets B's size first, so that the ranges B has no data for stay holes in A.
  SetAttrIn grow;
  grow.valid = fuse::FATTR_SIZE | fuse::FATTR_FH;
  grow.fh = job.a_fh;
  grow.size = size;
  Result<AttrReply> grown = co_await config_.a->setattr(root, job.a_ino, grow);
  if (!grown) co_return Errno{grown.error()};
  bool seek = true;  // B answers SEEK_DATA/SEEK_HOLE
  uint64_t offset = 0;
  while (offset < size) {
    uint64_t start = offset;
    uint64_t end = size;
    if (seek) {
      Result<uint64_t> data =
          co_await config_.b->lseek(root, job.b_ino, job.b_fh, offset, SEEK_DATA);
      if (!data && data.error() == ENXIO) break;  // only a hole from `offset` to the end
      if (data) {
        start = *data;
        if (start >= size) break;
        Result<uint64_t> hole =
            co_await config_.b->lseek(root, job.b_ino, job.b_fh, start, SEEK_HOLE);
        if (hole && *hole > start) end = std::min(*hole, size);
      } else {
        seek = false;  // no hole map: everything from here is data
      }
    }
    Result<uint64_t> reached = co_await copy_range(job, start, end);
    if (!reached) co_return Errno{reached.error()};
    if (*reached < end) break;  // B ended early: it shrank under us
    offset = end;
  }
  co_return ok_status();
}

Task<Result<uint64_t>> DualFs::copy_range(CopyJob& job, uint64_t offset, uint64_t end) {
  const RequestContext root = server_ctx();
  while (offset < end) {
    if (job.host_in >= 0) {
      // Bounded pieces, each one blocking-pool job: requests keep being served in between.
      const uint64_t want = std::min<uint64_t>(end - offset, config_.host_copy_chunk);
      Result<size_t> put = co_await config_.a->copy_from_host_fd(root, job.host_in, offset,
                                                                 job.a_ino, job.a_fh, offset, want);
      if (put) {
        if (*put == 0) co_return offset;
        offset += *put;
        copied_bytes_.fetch_add(*put, std::memory_order_relaxed);
        host_copied_bytes_.fetch_add(*put, std::memory_order_relaxed);
        continue;
      }
      if (!host_copy_refused(put.error())) co_return Errno{put.error()};
      job.host_in = -1;  // not between these two files: copy through the buffer from now on
      continue;
    }
    if (job.buffer.empty()) {
      // One buffer for the whole file: the chunk, or less for a smaller file.
      const uint64_t chunk = std::clamp<uint64_t>(config_.copy_chunk, 1, uint64_t{1} << 30);
      job.buffer.resize(static_cast<size_t>(std::min<uint64_t>(chunk, std::max(job.size, end))));
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(end - offset, job.buffer.size()));
    iovec in{job.buffer.data(), want};
    const IoVecs dst{std::span<const iovec>(&in, 1), want};
    Result<size_t> got = co_await config_.b->read(root, job.b_ino, job.b_fh, offset,
                                                  static_cast<uint32_t>(want), dst);
    if (!got) co_return Errno{got.error()};
    if (*got == 0) co_return offset;
    size_t done = 0;
    while (done < *got) {
      iovec out{job.buffer.data() + done, *got - done};
      const IoVecs src_iov{std::span<const iovec>(&out, 1), *got - done};
      const uint64_t at = offset + done;
      Result<size_t> put = co_await config_.a->write(root, job.a_ino, job.a_fh, at, src_iov, false);
      if (!put) co_return Errno{put.error()};
      if (*put == 0) co_return Errno{EIO};
      done += *put;
    }
    offset += *got;
    copied_bytes_.fetch_add(*got, std::memory_order_relaxed);
  }
  co_return offset;
}

Task<Status> DualFs::copy_xattrs(InodeId b_ino, InodeId a_ino) {
  const RequestContext root = server_ctx();
  Result<XattrReply> sized = co_await config_.b->listxattr(root, b_ino, 0);
  if (!sized) {
    if (unsupported(sized.error())) co_return ok_status();
    co_return Errno{sized.error()};
  }
  if (sized->size == 0) co_return ok_status();
  Result<XattrReply> list = co_await config_.b->listxattr(root, b_ino, sized->size);
  if (!list) co_return Errno{list.error()};
  const std::vector<char>& names = list->data;
  size_t pos = 0;
  while (pos < names.size()) {
    const char* start = names.data() + pos;
    const size_t len = ::strnlen(start, names.size() - pos);
    const std::string name(start, len);
    pos += len + 1;
    if (name.empty() || is_reserved_xattr(name)) continue;
    Result<XattrReply> vsize = co_await config_.b->getxattr(root, b_ino, name, 0);
    if (!vsize) {
      if (vsize.error() == ENODATA) continue;
      co_return Errno{vsize.error()};
    }
    Result<XattrReply> value = co_await config_.b->getxattr(root, b_ino, name, vsize->size);
    if (!value) co_return Errno{value.error()};
    const std::span<const char> bytes(value->data.data(), value->data.size());
    Status set = co_await config_.a->setxattr(root, a_ino, name, bytes, 0);
    // A may not take every namespace B has (system.* ACLs on MemFs): the copy goes ahead
    // without them, as cp -a does.
    if (!set && !unsupported(set.error())) co_return set;
  }
  co_return ok_status();
}

Task<Status> DualFs::copy_metadata(InodeId a_ino, const Attr& from, bool symlink) {
  const RequestContext root = server_ctx();
  // Without setuid/setgid bits there is nothing a chown could clear: owner, mode and times go
  // in one setattr (one host job and one ownership-record write on a passthrough A instead of
  // two). Otherwise the mode goes after the owner, as a chown may clear setuid and setgid.
  const bool together = (from.mode & (S_ISUID | S_ISGID)) == 0;
  if (!together) {
    SetAttrIn owner;
    owner.valid = fuse::FATTR_UID | fuse::FATTR_GID;
    owner.uid = from.uid;
    owner.gid = from.gid;
    Result<AttrReply> chown = co_await config_.a->setattr(root, a_ino, owner);
    if (!chown) co_return Errno{chown.error()};
  }
  SetAttrIn rest;
  if (together) {
    rest.valid = fuse::FATTR_UID | fuse::FATTR_GID;
    rest.uid = from.uid;
    rest.gid = from.gid;
  }
  rest.valid |= fuse::FATTR_ATIME | fuse::FATTR_MTIME;
  if (!symlink) rest.valid |= fuse::FATTR_MODE;
  rest.mode = from.mode & 07777;
  rest.atime = from.atime;
  rest.mtime = from.mtime;
  Result<AttrReply> done = co_await config_.a->setattr(root, a_ino, rest);
  if (!done) co_return Errno{done.error()};
  co_return ok_status();
}

Task<Status> DualFs::copy_up_now(const NodePtr& n, bool truncate, uint64_t& data_size) {
  const InodeTable::View v = table_.view(*n);
  if (v.b == 0) co_return Errno{EIO};
  NodePtr parent = table_.find(v.parent);
  if (!parent) co_return Errno{ENOENT};
  Result<InodeId> pa = co_await a_dir_of(parent);
  if (!pa) co_return Errno{pa.error()};
  const RequestContext root = server_ctx();
  Result<AttrReply> st = co_await config_.b->getattr(root, v.b, std::nullopt);
  if (!st) co_return Errno{st.error()};
  const Attr from = st->attr;
  Result<InodeId> staging = co_await staging_dir();
  if (!staging) co_return Errno{staging.error()};
  const std::string tmp = "tmp." + std::to_string(instance_tag_) + "." +
                          std::to_string(staging_seq_.fetch_add(1, std::memory_order_relaxed));

  InodeId made = 0;
  Status status;
  if (S_ISREG(from.mode)) {
    Result<CreateReply> c = co_await config_.a->create(root, *staging, tmp, from.mode & 07777,
                                                       O_WRONLY | O_CREAT | O_EXCL, 0, false);
    if (!c) co_return Errno{c.error()};
    made = c->entry.ino;
    const HandleId a_fh = c->open.fh;
    if (!truncate && from.size > 0) status = co_await copy_data(v.b, made, a_fh, from);
    Status released = co_await config_.a->release(root, made, a_fh, O_WRONLY);
    (void)released;
  } else if (S_ISLNK(from.mode)) {
    Result<std::string> target = co_await config_.b->readlink(root, v.b);
    if (!target) co_return Errno{target.error()};
    const std::string t = *target;
    Result<Entry> s = co_await config_.a->symlink(root, *staging, tmp, t);
    if (!s) co_return Errno{s.error()};
    made = s->ino;
  } else {
    Result<Entry> s = co_await config_.a->mknod(root, *staging, tmp, from.mode, from.rdev, 0);
    if (!s) co_return Errno{s.error()};
    made = s->ino;
  }
  if (status) status = co_await copy_xattrs(v.b, made);
  if (status) status = co_await copy_metadata(made, from, S_ISLNK(from.mode));
  // With persistent whiteouts the copy itself records that it hides B (whiteouts.hpp), so the
  // copy-up makes no marker file. Linux takes user.* xattrs on regular files only: other copies,
  // and an A that refuses the xattr, get a whiteout marker after all.
  bool marked = false;
  if (status && whiteouts_.storage() == WhiteoutStorage::markers && S_ISREG(from.mode)) {
    static constexpr char mark_value[] = "1";
    const std::span<const char> mark(mark_value, 1);
    Status set = co_await config_.a->setxattr(root, made, copy_up_xattr, mark, 0);
    marked = set.ok();
  }
  if (status) {
    const std::string name = v.name;
    status = co_await config_.a->rename(root, *staging, tmp, *pa, name, 0);
  }
  if (!status) {
    config_.a->forget(made, 1);
    Status undo = co_await config_.a->unlink(root, *staging, tmp);
    (void)undo;
    co_return status;
  }
  std::vector<ChildRef> drop;
  table_.set_side(n, Side::a, made, true, drop);
  give_back(drop);
  copy_ups_.fetch_add(1, std::memory_order_relaxed);
  if (S_ISREG(from.mode) && !truncate) data_size = from.size;
  const std::string name = v.name;
  if (marked) co_return co_await whiteouts_.note_copy(*pa, name);
  co_return co_await whiteouts_.add(*pa, name);
}

}  // namespace sandfs::dualfs
