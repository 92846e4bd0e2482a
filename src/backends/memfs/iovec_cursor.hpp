// IoVecCursor: walks a transport IoVecs view so page data can be copied straight to or from it,
// with no staging buffer in between.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>

#include "core/filesystem.hpp"

namespace sandfs::memfs {

class IoVecCursor {
 public:
  explicit IoVecCursor(const IoVecs& v) : iov_(v.iov) {
    // The transport promises iov covers `size`; never trust that further than the iovecs go.
    size_t total = 0;
    for (const iovec& e : iov_)
      total += e.iov_len;
    remaining_ = std::min(total, v.size);
  }

  size_t remaining() const { return remaining_; }

  // Copies n bytes out of the transport memory into dst.
  void copy_out(std::byte* dst, size_t n) {
    walk(n, [&](std::byte* seg, size_t len) {
      std::memcpy(dst, seg, len);
      dst += len;
    });
  }

  // Copies n bytes from src into the transport memory.
  void copy_in(const std::byte* src, size_t n) {
    walk(n, [&](std::byte* seg, size_t len) {
      std::memcpy(seg, src, len);
      src += len;
    });
  }

  // Writes n zero bytes (a hole) into the transport memory.
  void fill_zero(size_t n) {
    walk(n, [](std::byte* seg, size_t len) { std::memset(seg, 0, len); });
  }

 private:
  template <class F>
  void walk(size_t n, F&& f) {
    n = std::min(n, remaining_);
    remaining_ -= n;
    while (n > 0) {
      const iovec& e = iov_[index_];
      size_t len = std::min(n, e.iov_len - offset_);
      if (len > 0) f(static_cast<std::byte*>(e.iov_base) + offset_, len);
      n -= len;
      offset_ += len;
      if (offset_ == e.iov_len) {
        ++index_;
        offset_ = 0;
      }
    }
  }

  std::span<const iovec> iov_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t remaining_ = 0;
};

}  // namespace sandfs::memfs
