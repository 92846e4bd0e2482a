// Result<T>: a value or an errno, the currency of every filesystem operation.
//
// ENOENT, EEXIST, ENOSPC, ... are ordinary outcomes of a filesystem call, not exceptional ones, so
// they travel as values. An errno is always a positive Linux error number; zero is never an error.
#pragma once

#include <cassert>
#include <cerrno>
#include <optional>
#include <type_traits>
#include <utility>

namespace sandfs {

// A positive errno value, wrapped so it can't be confused with a count or an offset.
struct Errno {
  int value;
};

inline constexpr Errno errno_of(int e) {
  return Errno{e > 0 ? e : EIO};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Errno e) : error_(e.value > 0 ? e.value : EIO) {}

  bool ok() const { return error_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return error_; }

  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::optional<T> value_;
  int error_ = 0;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errno e) : error_(e.value > 0 ? e.value : EIO) {}  // NOLINT: implicit by design

  bool ok() const { return error_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return error_; }

 private:
  int error_ = 0;
};

using Status = Result<void>;

inline Status ok_status() {
  return {};
}

}  // namespace sandfs
