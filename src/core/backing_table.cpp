#include "core/backing_table.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "core/session.hpp"

namespace sandfs {

using namespace fuse;

const uint32_t BackingTable::dropped_flags =
    FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
const uint32_t BackingTable::kept_flags = FOPEN_NOFLUSH;

namespace {

const char* error_name(int e) {
  const char* name = ::strerrorname_np(e);
  return name ? name : "unknown error";
}

}  // namespace

BackingTable::Answer BackingTable::open(InodeId ino, const OpenReply& reply, ReplyChannel& ch) {
  Answer answer;
  // Only the Session sets FOPEN_PASSTHROUGH: without a registered id it fails the open.
  answer.open_flags = reply.open_flags & ~FOPEN_PASSTHROUGH;

  // What can be checked without the lock: flags that cannot go with passthrough (a stream, a
  // non-seekable file), and that the fd is a regular file (the kernel checks it too, but its
  // identity is needed below anyway).
  bool offered = reply.backing_fd >= 0;
  bool usable = offered;
  struct stat st {};
  if (usable && (answer.open_flags & ~(dropped_flags | kept_flags)) != 0) {
    SANDFS_LOG(debug) << name_ << ": inode " << ino << ": open flags 0x" << std::hex
                      << answer.open_flags << std::dec << " rule out passthrough";
    usable = false;
  }
  if (usable && (::fstat(reply.backing_fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    SANDFS_LOG(debug) << name_ << ": inode " << ino << ": backing fd " << reply.backing_fd
                      << " is not an open regular file";
    usable = false;
  }

  std::lock_guard lock(mutex_);
  InodeState& inode = inodes_[ino];
  if (usable) {
    if (inode.passthrough > 0) {
      if (inode.dev == st.st_dev && inode.ino == st.st_ino) {
        answer.mode = Mode::passthrough;
        answer.backing_id = inode.backing_id;
      } else if (!logged_conflict_) {
        // DualFs after a copy-up, say: the kernel allows one host file per inode.
        logged_conflict_ = true;
        SANDFS_LOG(info) << name_ << ": inode " << ino
                         << " is open in passthrough mode on another host file; the kernel "
                            "fails this open with EIO until that file is closed";
      }
    } else if (inode.ordinary == 0 && !disabled_) {
      const int id = ch.open_backing(reply.backing_fd);
      if (id > 0) {
        inode.backing_id = id;
        inode.dev = st.st_dev;
        inode.ino = st.st_ino;
        ++backing_ids_;
        stats_.backing_id_opened();
        answer.mode = Mode::passthrough;
        answer.backing_id = id;
      } else {
        registration_failed(id < 0 ? -id : EIO);
      }
    }
    // else: ordinary handles are open, and the kernel would refuse to mix the modes.
    if (answer.mode != Mode::passthrough) answer.mode = Mode::fallback;
  } else {
    answer.mode = offered ? Mode::fallback : Mode::ordinary;
    if (inode.passthrough > 0 && !logged_conflict_) {
      logged_conflict_ = true;
      SANDFS_LOG(info) << name_ << ": inode " << ino
                       << " is open in passthrough mode and this open has no backing fd; the "
                          "kernel fails it with EIO unless that file was just closed (a backend "
                          "should offer backing fds for every open of a file or for none)";
    }
  }

  if (answer.mode == Mode::passthrough) {
    answer.open_flags = (answer.open_flags & ~dropped_flags) | FOPEN_PASSTHROUGH;
    ++inode.passthrough;
    ++handles_[HandleKey{ino, reply.fh}].passthrough;
    stats_.add_passthrough_open();
  } else {
    ++inode.ordinary;
    ++handles_[HandleKey{ino, reply.fh}].ordinary;
    if (answer.mode == Mode::fallback) stats_.add_passthrough_fallback();
  }
  return answer;
}

void BackingTable::release(InodeId ino, HandleId fh, ReplyChannel& ch) {
  std::lock_guard lock(mutex_);
  auto h = handles_.find(HandleKey{ino, fh});
  if (h == handles_.end()) return;
  const bool was_passthrough = h->second.ordinary == 0;
  if (was_passthrough) {
    --h->second.passthrough;
  } else {
    --h->second.ordinary;
  }
  if (h->second.passthrough == 0 && h->second.ordinary == 0) handles_.erase(h);

  auto i = inodes_.find(ino);
  if (i == inodes_.end()) return;  // cannot happen: every handle has its inode
  InodeState& inode = i->second;
  if (was_passthrough) {
    if (inode.passthrough > 0) --inode.passthrough;
    if (inode.passthrough == 0 && inode.backing_id > 0) {
      // The kernel has closed the inode's last passthrough file by now (it does that before
      // sending RELEASE), and every file it opened with the id holds its own reference.
      const int id = inode.backing_id;
      inode.backing_id = 0;
      --backing_ids_;
      stats_.backing_id_closed();
      if (const int r = ch.close_backing(id); r < 0) {
        SANDFS_LOG(debug) << name_ << ": closing backing id " << id << ": " << error_name(-r);
      }
    }
  } else if (inode.ordinary > 0) {
    --inode.ordinary;
  }
  if (inode.passthrough == 0 && inode.ordinary == 0) inodes_.erase(i);
}

void BackingTable::registration_failed(int error) {
  switch (error) {
    case EPERM:
    case ENOTTY:
    case ENOSYS:
    case EOPNOTSUPP:
      // The same answer would come for every file: stop asking.
      disabled_ = true;
      SANDFS_LOG(info) << name_ << ": kernel passthrough is off for this mount: registering a "
                       << "backing file failed with " << error_name(error)
                       << (error == EPERM ? " (the server needs CAP_SYS_ADMIN, and the kernel "
                                            "must have enabled passthrough at FUSE_INIT)"
                                          : " (the transport cannot do it)")
                       << "; files are served through the server";
      return;
    default:
      // ELOOP (the host file lives on a stacked filesystem such as overlayfs), EBADF,
      // ENOMEM, ...: this file only.
      if (!logged_failure_) {
        logged_failure_ = true;
        SANDFS_LOG(info) << name_ << ": the kernel refused a backing file (" << error_name(error)
                         << "); that file is served through the server";
      } else {
        SANDFS_LOG(debug) << name_ << ": the kernel refused a backing file (" << error_name(error)
                          << ")";
      }
  }
}

bool BackingTable::disabled() const {
  std::lock_guard lock(mutex_);
  return disabled_;
}

size_t BackingTable::inodes() const {
  std::lock_guard lock(mutex_);
  return inodes_.size();
}

size_t BackingTable::backing_ids() const {
  std::lock_guard lock(mutex_);
  return backing_ids_;
}

}  // namespace sandfs
