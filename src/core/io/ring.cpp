#include "core/io/ring.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "core/io/backend.hpp"
#include "core/log.hpp"

namespace sandfs::io {

namespace {

thread_local Ring* current_ring = nullptr;

constexpr unsigned max_entries = 32768;  // IORING_MAX_ENTRIES

std::string io_uring_disabled_sysctl() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  std::string value;
  if (in >> value) return value;
  return {};
}

void warn_fallback_once(int error) {
  static std::once_flag once;
  std::call_once(once, [error] {
    const char* name = strerrorname_np(error);
    std::string why = std::string(name ? name : "?") + ": " + std::strerror(error);
    if (error == EPERM) {
      const std::string sysctl = io_uring_disabled_sysctl();
      if (!sysctl.empty() && sysctl != "0") {
        why += "; kernel.io_uring_disabled=" + sysctl;
      } else {
        why += "; probably a seccomp filter or a container policy";
      }
    }
    SANDFS_LOG(warn) << "io_uring is unavailable (" << why
                     << "); host file syscalls run on a thread pool instead";
  });
}

}  // namespace

Ring::Ring(boost::asio::io_context& ctx, unsigned entries, Mode mode) : ctx_(ctx) {
  if (entries == 0 || entries > max_entries) {
    throw std::invalid_argument("io::Ring: entries must be in 1.." + std::to_string(max_entries));
  }
  if (mode != Mode::thread_pool) {
    int error = 0;
    backend_ = detail::make_uring_backend(ctx, entries, error);
    if (!backend_) {
      if (mode == Mode::io_uring) {
        throw std::system_error(error, std::generic_category(), "io::Ring: cannot set up io_uring");
      }
      warn_fallback_once(error);
    }
  }
  if (!backend_) backend_ = detail::make_thread_pool_backend(ctx);
}

Ring::~Ring() {
  if (current_ring == this) current_ring = nullptr;  // a Scope outliving its ring
  backend_->shutdown();
}

bool Ring::uses_io_uring() const {
  return backend_->uses_io_uring();
}

Ring::Stats Ring::stats() const {
  Stats s;
  s.ops_started = ops_started_;
  s.inline_calls = inline_calls_;
  backend_->add_stats(s);
  return s;
}

Ring& Ring::current() {
  if (!current_ring) throw std::logic_error("io::Ring::current(): no Ring::Scope on this thread");
  return *current_ring;
}

Ring* Ring::current_or_null() {
  return current_ring;
}

Ring::Scope::Scope(Ring& ring) : previous_(current_ring) {
  current_ring = &ring;
}

Ring::Scope::~Scope() {
  current_ring = previous_;
}

detail::Call Ring::rw_call(detail::OpCode code, int fd, std::span<const iovec> iov,
                           uint64_t offset) {
  detail::Call c{.code = code, .fd = fd, .iov = iov.data()};
  // More than UIO_MAXIOV (1024) is EINVAL from the kernel either way; clamp so it stays one.
  c.iov_count = static_cast<unsigned>(std::min<size_t>(iov.size(), UINT32_MAX));
  c.offset = offset;
  return c;
}

void Ring::start(detail::Op* op) {
  ++ops_started_;
  const detail::Call& c = op->call;
  // io_uring reads offset -1 as "the file position"; pread(2) calls it EINVAL. Keep one meaning.
  if ((c.code == detail::OpCode::preadv || c.code == detail::OpCode::pwritev) &&
      c.offset > static_cast<uint64_t>(INT64_MAX)) {
    detail::post_result(ctx_, detail::OpPtr(op), -EINVAL);
    return;
  }
  if (c.in_core) {
    // Cannot wait on a device (see fstatx): no reason to pay for a trip to a worker thread.
    ++inline_calls_;
    const long res = detail::run_syscall(op->call);
    detail::post_result(ctx_, detail::OpPtr(op), res);
    return;
  }
  backend_->start(op);
}

}  // namespace sandfs::io
