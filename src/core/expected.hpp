// Expected<T, E>: a value or an error of a category other than an errno.
//
// Transport faults (a bad memory table from the frontend, a ring that does not fit guest memory)
// end or reset a connection and never reach a backend; volume-service errors carry a code for the
// HTTP edge. Neither travels as an errno in a Result. GCC 12's library has no std::expected; this
// is the small part of it we need.
#pragma once

#include <cassert>
#include <utility>
#include <variant>

namespace sandfs {

template <class T, class E>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Expected(E error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const {
    assert(!ok());
    return std::get<1>(state_);
  }

 private:
  std::variant<T, E> state_;
};

}  // namespace sandfs
