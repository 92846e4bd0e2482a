#include "transport/vhost_user/descriptor_chain.hpp"

#include <algorithm>
#include <cstring>

namespace sandfs::vhost_user {

IovecCursor::IovecCursor(std::span<const iovec> iov) : iov_(iov) {
  for (const iovec& v : iov_)
    remaining_ += v.iov_len;
}

template <class Fn>
size_t IovecCursor::walk(size_t n, Fn&& fn) {
  size_t done = 0;
  n = std::min(n, remaining_);
  while (done < n) {
    const iovec& v = iov_[index_];
    const size_t piece = std::min(v.iov_len - offset_, n - done);
    if (piece > 0) fn(static_cast<std::byte*>(v.iov_base) + offset_, piece, done);
    done += piece;
    offset_ += piece;
    if (offset_ == v.iov_len) {
      ++index_;
      offset_ = 0;
    }
  }
  remaining_ -= done;
  consumed_ += done;
  return done;
}

size_t IovecCursor::skip(size_t n) {
  return walk(n, [](std::byte*, size_t, size_t) {});
}

size_t IovecCursor::take(size_t n, IovecList& out) {
  return walk(n, [&](std::byte* p, size_t len, size_t) { out.push_back(iovec{p, len}); });
}

size_t ChainReader::read(void* dst, size_t n) {
  auto* to = static_cast<std::byte*>(dst);
  return walk(n, [&](std::byte* p, size_t len, size_t done) { std::memcpy(to + done, p, len); });
}

bool ChainReader::read_exact(void* dst, size_t n) {
  if (n > remaining()) return false;
  read(dst, n);
  return true;
}

size_t ChainWriter::write(const void* src, size_t n) {
  const auto* from = static_cast<const std::byte*>(src);
  return walk(n, [&](std::byte* p, size_t len, size_t done) { std::memcpy(p, from + done, len); });
}

bool ChainWriter::write_exact(const void* src, size_t n) {
  if (n > remaining()) return false;
  write(src, n);
  return true;
}

bool ChainWriter::write_all(std::span<const iovec> parts) {
  size_t total = 0;
  for (const iovec& part : parts) {
    if (part.iov_len > remaining() - total) return false;
    total += part.iov_len;
  }
  for (const iovec& part : parts)
    write(part.iov_base, part.iov_len);
  return true;
}

}  // namespace sandfs::vhost_user
