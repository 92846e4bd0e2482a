// BackingTable: the Session's bookkeeping for kernel FUSE passthrough.
//
// The kernel's rules (fs/fuse/iomode.c and backing.c on 6.18, checked by
// tests/integration/kernel_passthrough_test.cpp):
// * An inode is in one io mode at a time. While any open file of it is a passthrough file, every
//   new open of it must be passthrough too, on the SAME backing (one fuse_backing object, i.e.
//   one backing id); a different id is EBUSY and an ordinary open EINVAL, both of which the
//   opener sees as EIO. While an ordinary (page-cached) file of it is open, a passthrough open
//   fails the same way. The mode ends when the kernel has closed the inode's last file of it,
//   which is before it sends that file's RELEASE.
// * The kernel looks the backing id up in the opener's context after the OPEN reply has been
//   written, so the id must stay registered after the reply; once the open has completed the
//   file and the inode hold their own references and the id is no longer needed.
// * FOPEN_PASSTHROUGH tolerates only FOPEN_DIRECT_IO, FOPEN_PARALLEL_DIRECT_WRITES and
//   FOPEN_NOFLUSH beside it (anything else fails the open), and FOPEN_DIRECT_IO overrides it:
//   read() and write() would go to the server again, only mmap would pass through.
//
// So, per inode: one backing id, registered at the first passthrough open and shared by every
// later passthrough open of the same host file, closed when the last of those handles is
// released; and a count of ordinary handles, so that an open with a backing fd while ordinary
// handles are open is answered the ordinary way instead of failing. RELEASE always comes for an
// open whose reply the kernel accepted (also when the kernel then failed the open itself), so
// counting handles from reply to RELEASE leaks nothing.
//
// Thread-safe: one mutex, held for a hash-map update and at most one ioctl.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/filesystem.hpp"
#include "core/stats.hpp"

namespace sandfs {

class ReplyChannel;

class BackingTable {
 public:
  // FOPEN_* flags the Session drops when it answers an open in passthrough mode: KEEP_CACHE
  // (the FUSE page cache is not used at all) and DIRECT_IO (+ PARALLEL_DIRECT_WRITES, which
  // needs it): the kernel would let DIRECT_IO override passthrough, and passthrough I/O on the
  // host file is already as coherent as direct I/O through the server.
  static const uint32_t dropped_flags;
  // FOPEN_* flags that may stay beside FOPEN_PASSTHROUGH.
  static const uint32_t kept_flags;

  enum class Mode {
    ordinary,     // served through the backend's read()/write()
    passthrough,  // the kernel does the I/O on the host file
    fallback,     // the backend offered a backing fd, but the open is served the ordinary way
  };
  struct Answer {
    Mode mode = Mode::ordinary;
    uint32_t open_flags = 0;  // what to put in fuse_open_out.open_flags
    int32_t backing_id = 0;   // what to put in fuse_open_out.backing_id (0 unless passthrough)
  };

  BackingTable(std::string name, Stats& stats) : name_(std::move(name)), stats_(stats) {}
  ~BackingTable() = default;
  BackingTable(const BackingTable&) = delete;
  BackingTable& operator=(const BackingTable&) = delete;

  // A file open (OPEN or CREATE) of `ino` that the backend answered with `reply` is about to be
  // sent: decides how, registering the backing fd through `ch` if needed, and records the
  // handle until release(). Never fails; the worst case is an ordinary open.
  Answer open(InodeId ino, const OpenReply& reply, ReplyChannel& ch);

  // The kernel released handle `fh` of `ino` (or never got the open reply). Closes the inode's
  // backing id through `ch` when this was its last passthrough handle. Unknown handles are
  // ignored.
  void release(InodeId ino, HandleId fh, ReplyChannel& ch);

  // Whether registration was given up for this session (EPERM and the like).
  bool disabled() const;
  // Inodes with open handles, and backing ids currently registered (for tests).
  size_t inodes() const;
  size_t backing_ids() const;

 private:
  struct InodeState {
    uint32_t passthrough = 0;  // open handles in passthrough mode
    uint32_t ordinary = 0;     // open handles served the ordinary way
    int32_t backing_id = 0;    // > 0 while passthrough > 0
    dev_t dev = 0;             // the host file behind backing_id
    ino_t ino = 0;
  };
  struct HandleKey {
    InodeId ino;
    HandleId fh;
    bool operator==(const HandleKey&) const = default;
  };
  struct HandleKeyHash {
    size_t operator()(const HandleKey& k) const noexcept {
      return std::hash<uint64_t>()(k.ino * 0x9e3779b97f4a7c15ull ^ k.fh);
    }
  };
  // Open handles of one key. A backend should return a distinct fh per open; if it does not,
  // both counts may be non-zero and a release is attributed to the ordinary one first.
  struct HandleCount {
    uint32_t passthrough = 0;
    uint32_t ordinary = 0;
  };

  // Registration failed with -error: decide whether to stop trying, and log once.
  void registration_failed(int error);

  const std::string name_;
  Stats& stats_;
  mutable std::mutex mutex_;
  std::unordered_map<InodeId, InodeState> inodes_;
  std::unordered_map<HandleKey, HandleCount, HandleKeyHash> handles_;
  size_t backing_ids_ = 0;
  bool disabled_ = false;
  bool logged_failure_ = false;
  bool logged_conflict_ = false;
};

}  // namespace sandfs
