// Per-thread pool of /dev/fuse request buffers.
//
// Every read(2) on /dev/fuse needs a buffer big enough for the largest request (a WRITE of
// max_write bytes plus headers), and that buffer stays with the request until its reply has been
// sent, since the Session decodes in place and READ replies are built in it. A thread therefore
// needs as many buffers as it has requests in flight. The pool keeps released buffers on an
// intrusive free list so the steady state allocates nothing; beyond `max_free` idle buffers it
// gives memory back.
//
// Buffers are page-aligned (an O_DIRECT read from a passthrough backend can land in one) and their
// size is rounded up to whole pages. Not thread-safe: one pool per server thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "transport/fuse_dev/thread_counter.hpp"

namespace sandfs::fuse_dev {

class RequestBuffers {
 public:
  static constexpr size_t alignment = 4096;

  explicit RequestBuffers(size_t buffer_size, size_t max_free = 64);
  ~RequestBuffers();
  RequestBuffers(const RequestBuffers&) = delete;
  RequestBuffers& operator=(const RequestBuffers&) = delete;

  // A buffer of buffer_size() bytes. Throws std::bad_alloc.
  std::byte* acquire();
  // Returns a buffer from acquire() of this pool.
  void release(std::byte* buffer) noexcept;

  size_t buffer_size() const { return buffer_size_; }
  size_t free_count() const { return free_count_; }
  size_t in_use() const { return in_use_; }
  // How many buffers were ever allocated (a steady state stops increasing it). Readable from
  // any thread.
  uint64_t allocations() const { return allocations_.get(); }

 private:
  struct FreeNode {
    FreeNode* next;
  };

  size_t buffer_size_;
  size_t max_free_;
  FreeNode* free_ = nullptr;
  size_t free_count_ = 0;
  size_t in_use_ = 0;
  ThreadCounter allocations_;
};

}  // namespace sandfs::fuse_dev
