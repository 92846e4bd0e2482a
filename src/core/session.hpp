// Session: one mounted Filesystem on one transport.
//
// The transport hands every FUSE message it receives to handle(); the Session validates it,
// negotiates FUSE_INIT, dispatches to the Filesystem, encodes the reply and sends it through the
// transport's ReplyChannel, and records per-mount statistics. Transports run one handle()
// coroutine per request (co_spawn), so a slow request never holds back the others.
//
// Every request passes through the mount's hook chain (hooks.hpp): the Stats first, then
// SessionOptions::hooks. A hook may refuse a request before it reaches the backend.
//
// Thread model: handle() may run concurrently on several threads (one io_context each) for the
// same Session. Everything here is thread-safe.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/filesystem.hpp"
#include "core/hooks.hpp"
#include "core/stats.hpp"

namespace sandfs {

class BackingTable;

// The transport's side of one request's reply. Lives until handle() completes.
class ReplyChannel {
 public:
  virtual ~ReplyChannel() = default;

  // Writable transport memory for up to `size` bytes of READ payload, which will be sent right
  // after the fuse_out_header. /dev/fuse reuses the request buffer; vhost-user points into the
  // guest's writable descriptors. Returns a view covering `size` bytes, or an empty view
  // (size 0) when it has less room than that (the Session then answers EINVAL... or the
  // transport's own limit).
  virtual IoVecs payload_buffer(size_t size) = 0;

  // Sends a reply. iov[0] is the fuse_out_header (len already set to the total of all parts).
  // Parts may point into the payload_buffer(). Returns false if the transport could not deliver
  // (the connection is gone); the Session only counts that.
  virtual bool send(std::span<const iovec> iov) = 0;

  // ---- kernel FUSE passthrough (see "Kernel passthrough" in core/filesystem.hpp) ----
  // Backing ids belong to the connection, not to one fd or request: an id registered through
  // one request's channel may be closed through another's.

  // Whether this transport can register host fds with the kernel at all. Asked once, at
  // FUSE_INIT: the Session asks for FUSE_PASSTHROUGH only when this is true.
  virtual bool supports_backing() const { return false; }
  // Registers the host fd `fd` (a regular file) with the kernel. Returns the backing id (> 0)
  // to put in fuse_open_out, or a negative errno. The kernel keeps its own reference to the
  // file: the caller may close `fd` afterwards. Only valid after the INIT reply was sent.
  virtual int open_backing(int fd) {
    (void)fd;
    return -ENOSYS;
  }
  // Drops the kernel's id `id`. Files the kernel already opened with it keep their own
  // reference. Returns 0 or a negative errno (-ENOENT: no such id).
  virtual int close_backing(int id) {
    (void)id;
    return -ENOSYS;
  }
};

struct SessionOptions {
  // Largest WRITE payload (and READ size) offered to the kernel. Must be a multiple of 4 KiB
  // between 4 KiB and 1 MiB (the kernel's default max_pages limit is 256).
  uint32_t max_write = 1u << 20;
  uint16_t max_background = 64;
  uint16_t congestion_threshold = 48;
  // Name for log lines.
  std::string name = "sandfs";
  // Use kernel passthrough when the backend asks for it (Capabilities::passthrough) and the
  // transport supports it. false: never (to compare with and without, or to see every READ).
  bool passthrough = true;
  // Where to record statistics; null: the Session keeps its own. A mount served over several
  // connections (vhost-user: a Session per frontend) passes one Stats to all of them, so its
  // counts add up across reconnects.
  std::shared_ptr<Stats> stats;
  // Hooks run after the Stats, in this order, on every request (hooks.hpp). Backend events reach
  // them too. Null entries are skipped.
  std::vector<std::shared_ptr<Hook>> hooks;
};

class Session {
 public:
  Session(std::shared_ptr<Filesystem> fs, SessionOptions options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Handles one complete FUSE message (fuse_in_header first). `message` and `reply` must stay
  // valid until the returned awaitable completes. Never throws.
  Task<void> handle(std::span<const std::byte> message, ReplyChannel& reply);
  // The same for a FUSE_WRITE whose data the transport leaves where it is (guest memory):
  // `message` holds the header and fuse_write_in, `data` the payload that follows them
  // (header.len counts both). The backend writes straight from `data`. Any other opcode, or
  // lengths that disagree, is answered EINVAL like a malformed message.
  Task<void> handle_write(std::span<const std::byte> message, const IoVecs& data,
                          ReplyChannel& reply);

  // Size a transport's receive buffer must have to hold any request the kernel may send.
  size_t request_buffer_size() const;

  bool initialized() const { return initialized_.load(std::memory_order_acquire); }
  // True once FUSE_DESTROY was handled; the transport should stop.
  bool destroyed() const { return destroyed_.load(std::memory_order_acquire); }

  // Calls Filesystem::destroy() if FUSE_DESTROY never arrived (the kernel does not send it for
  // plain /dev/fuse mounts). Idempotent. The transport calls it when it shuts down.
  Task<void> shutdown();

  // SessionOptions::stats when it was set, else the Session's own.
  Stats& stats() { return stats_; }
  const Stats& stats() const { return stats_; }
  Filesystem& filesystem() { return *fs_; }
  // The Stats followed by SessionOptions::hooks; also the EventSink the backend was given.
  const std::shared_ptr<HookChain>& hooks() const { return hooks_; }

  // What was negotiated (valid once initialized()).
  uint32_t proto_minor() const { return proto_minor_; }
  uint64_t negotiated_flags() const { return negotiated_flags_; }
  uint32_t max_write() const { return options_.max_write; }
  // FUSE_PASSTHROUGH was agreed (valid once initialized()).
  bool passthrough() const { return backing_ != nullptr; }

 private:
  struct Dispatch;
  friend struct Dispatch;
  Task<void> handle_message(std::span<const std::byte> message, const IoVecs* trailing,
                            ReplyChannel& reply);
  class InFlight;

  std::shared_ptr<Filesystem> fs_;
  SessionOptions options_;
  std::shared_ptr<Stats> stats_owner_;  // options_.stats, or one of our own
  Stats& stats_;
  std::shared_ptr<HookChain> hooks_;
  std::unique_ptr<InFlight> in_flight_;
  // Set at FUSE_INIT when passthrough was agreed (before initialized_ is published).
  std::unique_ptr<BackingTable> backing_;
  std::atomic<bool> initialized_{false};
  std::atomic<bool> destroyed_{false};
  std::atomic<bool> fs_destroyed_{false};
  size_t buffer_size_ = 0;
  uint32_t proto_minor_ = 0;
  uint64_t negotiated_flags_ = 0;
};

}  // namespace sandfs
