// Quota: a cap on the bytes stored under the root, enforced with ENOSPC.
//
// "Bytes stored" is the sum of the sizes of the regular files under the root, each host inode
// counted once however many names it has. Directories, xattrs, and the names themselves are not
// counted. Sizes rather than allocated blocks, so every charge is known before the operation runs
// and an operation that does not fit is refused whole: a write, truncate-extend, fallocate or
// copy_file_range either fits completely or fails with ENOSPC and changes nothing.
//
// ## Accounting
// * At mount, one walk of the tree (asynchronous: a coroutine, one blocking job per directory)
//   adds up what is already there. Until it finishes, operations that need a charge wait for it
//   (they poll a flag, interruptible): no tree walk ever runs on a request, and nothing is charged
//   against a total that is not known yet.
// * Afterwards the count moves with every operation: growth is charged before it happens, shrinking
//   (truncate, unlink or rename-over of a file's last name) is given back after it happened.
// * Each inode entry keeps the size the accounting believes its host file has (Inode::size), so a
//   write charges only what it adds past that, with a compare-and-swap that lets concurrent
//   appenders each pay their own part once.
// * Changes made on the host behind the server's back are not seen until an operation stats the
//   file (truncate, unlink); the count is never allowed below zero.
// * fallocate with FALLOC_FL_KEEP_SIZE past the end of the file would allocate space the sizes do
//   not show: under a quota it is refused with EOPNOTSUPP (callers fall back to writing).
// * The limit may change while the quota is in use (a volume's quota updated through the API):
//   each charge reads it once, so a charge is judged against one limit, old or new. Lowering it
//   below what is used takes nothing away; nothing more fits until the tree shrinks.
#pragma once

#include <atomic>
#include <cstdint>

namespace sandfs::passthrough {

class Quota {
 public:
  explicit Quota(uint64_t limit) : limit_(limit) {}

  uint64_t limit() const { return limit_.load(std::memory_order_relaxed); }
  void set_limit(uint64_t limit) { limit_.store(limit, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t available() const {
    const uint64_t l = limit();
    const uint64_t u = used();
    return u >= l ? 0 : l - u;
  }

  // Takes `bytes` if they fit; false (nothing taken) if not.
  bool try_charge(uint64_t bytes) {
    if (bytes == 0) return true;
    const uint64_t l = limit();
    uint64_t cur = used_.load(std::memory_order_relaxed);
    do {
      if (bytes > l || cur > l - bytes) return false;
    } while (!used_.compare_exchange_weak(cur, cur + bytes, std::memory_order_relaxed));
    return true;
  }
  // Gives `bytes` back (clamped at zero).
  void release(uint64_t bytes) {
    if (bytes == 0) return;
    uint64_t cur = used_.load(std::memory_order_relaxed);
    while (!used_.compare_exchange_weak(cur, cur > bytes ? cur - bytes : 0,
                                        std::memory_order_relaxed)) {
    }
  }
  // What the mount walk found; may exceed the limit (then nothing more fits until it shrinks).
  void add_existing(uint64_t bytes) {
    used_.fetch_add(bytes, std::memory_order_relaxed);
    ready_.store(true, std::memory_order_release);
  }
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  // Who counts what is stored, when several users share one Quota (the mounts of a volume and
  // its host-side file operations): true for exactly one caller, which walks the tree and calls
  // add_existing(); the others wait for ready(). A counter that stops before it is done (its
  // mount went away) calls abandon_count() instead, so that the next user claims and counts.
  bool claim_count() {
    bool expected = false;
    return counting_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
  }
  void abandon_count() { counting_.store(false, std::memory_order_release); }

 private:
  std::atomic<uint64_t> limit_;
  std::atomic<uint64_t> used_{0};
  std::atomic<bool> ready_{false};
  std::atomic<bool> counting_{false};
};

}  // namespace sandfs::passthrough
