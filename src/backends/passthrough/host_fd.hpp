// HostFd: a host file descriptor shared by everything that uses it, closed when the last user lets
// go.
//
// Several coroutines use one fd at a time (an O_PATH fd cached for an inode, an open file behind a
// handle) while another may decide to drop it (fd cache eviction, release, forget). Closing the
// number while an io_uring operation on it is still queued would let the kernel hand the same
// number to a new file and the operation would hit that file instead, so an fd is closed only by
// the destructor of its last shared owner, never by whoever evicts it.
#pragma once

#include <unistd.h>

#include <charconv>
#include <memory>
#include <string_view>

namespace sandfs::passthrough {

class HostFd {
 public:
  explicit HostFd(int fd) noexcept : fd_(fd) {
    auto [end, ec] = std::to_chars(name_, name_ + sizeof name_ - 1, fd);
    (void)ec;  // an int always fits
    *end = '\0';
  }
  ~HostFd();
  HostFd(const HostFd&) = delete;
  HostFd& operator=(const HostFd&) = delete;

  int get() const { return fd_; }
  // The fd number as a NUL-terminated decimal string: its name under /proc/self/fd.
  const char* proc_name() const { return name_; }

 private:
  int fd_;
  char name_[12];
};

using SharedFd = std::shared_ptr<HostFd>;

inline SharedFd adopt_fd(int fd) {
  return std::make_shared<HostFd>(fd);
}

// Closes through the calling thread's io::Ring when it has one (the close joins the next batch of
// submissions), else directly (start-up, shutdown, tests without a ring).
void close_host_fd(int fd) noexcept;

}  // namespace sandfs::passthrough
