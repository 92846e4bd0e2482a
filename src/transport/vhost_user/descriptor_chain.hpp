// DescriptorChain: one request's buffers, popped from a virtqueue and already validated; and
// ChainReader / ChainWriter, the copies in and out of those buffers.
//
// A chain is two lists of host iovecs into guest memory: the readable buffers (driver to device:
// the FUSE request) and then the writable ones (device to driver: the reply). Every iovec lies
// wholly inside one guest memory region; the chain holds that memory's table so it stays mapped
// while the request is in flight, even if the frontend replaces the table meanwhile.
//
// The guest can rewrite these buffers at any moment, also while we read them. Rules for whoever
// consumes a chain:
//   - Copy what you parse (headers, names, lengths) out with a ChainReader and validate the copy;
//     never parse in place, never read a field twice.
//   - Bulk data need not be copied: readable()/writable() and ChainReader::take /
//     ChainWriter::take give iovecs a backend can preadv/pwritev straight into guest memory.
//     Whatever the guest does to those bytes meanwhile only hurts its own data.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>

#include <boost/container/small_vector.hpp>

#include "transport/vhost_user/guest_memory.hpp"

namespace sandfs::vhost_user {

// FUSE requests usually have 2 to 4 buffers; larger chains spill to the heap.
using IovecList = boost::container::small_vector<iovec, 4>;

class DescriptorChain {
 public:
  DescriptorChain() = default;

  // The head descriptor index: what push() gives back to the driver.
  uint16_t head() const { return head_; }

  std::span<const iovec> readable() const { return {iov_.data(), readable_count_}; }
  std::span<const iovec> writable() const {
    return {iov_.data() + readable_count_, iov_.size() - readable_count_};
  }
  size_t readable_bytes() const { return readable_bytes_; }
  size_t writable_bytes() const { return writable_bytes_; }

  // The memory table the iovecs point into; null for a default-constructed chain.
  const std::shared_ptr<const GuestMemory>& memory() const { return memory_; }

 private:
  friend class SplitVirtqueue;

  IovecList iov_;
  size_t readable_count_ = 0;
  size_t readable_bytes_ = 0;
  size_t writable_bytes_ = 0;
  uint16_t head_ = 0;
  std::shared_ptr<const GuestMemory> memory_;
};

// A position in a list of iovecs. The list must outlive the cursor.
class IovecCursor {
 public:
  explicit IovecCursor(std::span<const iovec> iov);

  size_t remaining() const { return remaining_; }
  size_t consumed() const { return consumed_; }

  // Moves forward by up to n bytes; returns how many.
  size_t skip(size_t n);
  // Appends iovecs covering the next min(n, remaining()) bytes to `out` and moves past them;
  // returns how many bytes they cover.
  size_t take(size_t n, IovecList& out);

 protected:
  // Calls fn(pointer, length) for consecutive pieces of the next min(n, remaining()) bytes.
  template <class Fn>
  size_t walk(size_t n, Fn&& fn);

 private:
  std::span<const iovec> iov_;
  size_t index_ = 0;   // current iovec
  size_t offset_ = 0;  // bytes of it already consumed
  size_t remaining_ = 0;
  size_t consumed_ = 0;
};

// Gathers bytes from a chain's readable buffers.
class ChainReader : public IovecCursor {
 public:
  explicit ChainReader(std::span<const iovec> iov) : IovecCursor(iov) {}
  explicit ChainReader(const DescriptorChain& chain) : IovecCursor(chain.readable()) {}

  // Copies up to n bytes to dst; returns how many.
  size_t read(void* dst, size_t n);
  // Copies exactly n bytes, or nothing (and returns false) when fewer remain.
  bool read_exact(void* dst, size_t n);
};

// Scatters bytes into a chain's writable buffers.
class ChainWriter : public IovecCursor {
 public:
  explicit ChainWriter(std::span<const iovec> iov) : IovecCursor(iov) {}
  explicit ChainWriter(const DescriptorChain& chain) : IovecCursor(chain.writable()) {}

  // Copies up to n bytes from src; returns how many.
  size_t write(const void* src, size_t n);
  // Copies exactly n bytes, or nothing (and returns false) when there is less room.
  bool write_exact(const void* src, size_t n);
  // Writes every part of `parts` (a reply's header and payload), all or nothing.
  bool write_all(std::span<const iovec> parts);

  // What the used ring reports to the driver: consumed(), i.e. bytes written or skipped over
  // (skip() and take() are for payload written directly through the iovecs).
  // Chains are bounded far below 4 GiB; saturates for anything else.
  uint32_t written() const {
    return static_cast<uint32_t>(
        std::min<size_t>(consumed(), std::numeric_limits<uint32_t>::max()));
  }
};

}  // namespace sandfs::vhost_user
