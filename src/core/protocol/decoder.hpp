// Decoding FUSE requests without trusting them.
//
// A request arrives as bytes from the kernel or from a guest. Every read from it is bounds-checked
// against the buffer it came in; structs are copied out with memcpy (guest buffers need not be
// aligned), names must be NUL-terminated inside the buffer. A short or lying message is reported
// as a DecodeError, which the Session answers with EINVAL or drops, never a crash.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include "core/protocol/fuse_kernel.hpp"

namespace sandfs::fuse {

inline constexpr size_t name_max = 255;   // NAME_MAX
inline constexpr size_t path_max = 4096;  // PATH_MAX, for symlink targets
inline constexpr size_t xattr_size_max = 65536;
inline constexpr size_t xattr_name_max = 255;

// Reads typed arguments from a request's argument area, front to back.
class ArgReader {
 public:
  explicit ArgReader(std::span<const std::byte> args) : rest_(args) {}

  // Copies the next sizeof(T) bytes into `out`. False if fewer remain.
  template <class T>
  bool read(T& out) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(&out, rest_.data(), sizeof(T));
    rest_ = rest_.subspan(sizeof(T));
    return true;
  }

  // Copies up to sizeof(T) bytes: protocol versions that send a shorter struct (compat sizes)
  // leave the tail zeroed. False if fewer than `min_size` remain.
  template <class T>
  bool read_compat(T& out, size_t min_size) {
    static_assert(std::is_trivially_copyable_v<T>);
    out = T{};
    const size_t n = std::min(rest_.size(), sizeof(T));
    if (n < min_size) return false;
    std::memcpy(&out, rest_.data(), n);
    rest_ = rest_.subspan(n);
    return true;
  }

  // Reads a NUL-terminated string. False if no NUL is found or it is longer than `max_len`.
  bool read_cstring(std::string_view& out, size_t max_len) {
    const size_t limit = std::min(rest_.size(), max_len + 1);
    const void* nul = std::memchr(rest_.data(), 0, limit);
    if (nul == nullptr) return false;
    const size_t len = static_cast<size_t>(static_cast<const std::byte*>(nul) - rest_.data());
    out = std::string_view(reinterpret_cast<const char*>(rest_.data()), len);
    rest_ = rest_.subspan(len + 1);
    return true;
  }

  // Takes the next n bytes as a view.
  bool read_bytes(size_t n, std::span<const std::byte>& out) {
    if (rest_.size() < n) return false;
    out = rest_.first(n);
    rest_ = rest_.subspan(n);
    return true;
  }

  std::span<const std::byte> remaining() const { return rest_; }
  size_t size() const { return rest_.size(); }

 private:
  std::span<const std::byte> rest_;
};

// A request split into its header and its argument area (extensions removed).
struct RawRequest {
  fuse_in_header header{};
  std::span<const std::byte> args;
  std::span<const std::byte> extensions;
};

enum class DecodeError {
  too_short,       // fewer bytes than a fuse_in_header: nothing to reply to
  bad_length,      // header.len disagrees with the buffer
  bad_extensions,  // total_extlen runs past the message
};

// Splits a message. On failure returns the error and, where the header was readable, fills
// `header` so the caller can still answer with the request's unique id.
// `trailing`: bytes of the request that the transport keeps outside `message` (a WRITE's data
// left in guest memory); then header.len must be exactly message.size() + trailing and the
// request may carry no extensions.
inline std::optional<DecodeError> split_request(std::span<const std::byte> message, RawRequest& out,
                                                size_t trailing = 0) {
  if (message.size() < sizeof(fuse_in_header)) return DecodeError::too_short;
  std::memcpy(&out.header, message.data(), sizeof(fuse_in_header));
  const uint64_t len = out.header.len;
  if (trailing > 0) {
    if (len != uint64_t{message.size()} + trailing || out.header.total_extlen != 0) {
      return DecodeError::bad_length;
    }
    out.args = message.subspan(sizeof(fuse_in_header));
    out.extensions = {};
    return std::nullopt;
  }
  if (len < sizeof(fuse_in_header) || len > message.size()) return DecodeError::bad_length;
  auto body = message.subspan(sizeof(fuse_in_header), len - sizeof(fuse_in_header));
  const size_t ext = size_t{out.header.total_extlen} * 8;
  if (ext > body.size()) return DecodeError::bad_extensions;
  out.args = body.first(body.size() - ext);
  out.extensions = body.last(ext);
  return std::nullopt;
}

// Validates a single path component sent by the peer. Returns 0 or an errno:
// empty -> EINVAL, longer than NAME_MAX -> ENAMETOOLONG, contains '/' -> EPERM.
// "." and ".." are left to the backend (they are legal in a few places, e.g. EXPORT_SUPPORT).
inline int check_name(std::string_view name) {
  if (name.empty()) return EINVAL;
  if (name.size() > name_max) return ENAMETOOLONG;
  if (name.find('/') != std::string_view::npos) return EPERM;
  return 0;
}

}  // namespace sandfs::fuse
