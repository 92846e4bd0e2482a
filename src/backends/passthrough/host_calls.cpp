#include "backends/passthrough/host_calls.hpp"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "backends/passthrough/host_fd.hpp"
#include "core/io/ring.hpp"

// Syscall numbers shared by every architecture for calls added after 5.1.
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
#ifndef SYS_listxattrat
#define SYS_listxattrat 465
#endif
#ifndef SYS_removexattrat
#define SYS_removexattrat 466
#endif

namespace sandfs::passthrough {

void close_host_fd(int fd) noexcept {
  if (fd < 0) return;
  if (io::Ring* ring = io::Ring::current_or_null()) {
    try {
      ring->close(fd, [](Status) {});
      return;
    } catch (...) {
      // Out of memory for the operation record: close it here instead.
    }
  }
  ::close(fd);
}

HostFd::~HostFd() {
  close_host_fd(fd_);
}

namespace host {

namespace {

// include/uapi/linux/xattr.h (6.13): the argument block of getxattrat/setxattrat.
struct xattr_args {
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

long result(long r) noexcept {
  return r < 0 ? -errno : r;
}

// "/proc/self/fd/<dirfd>/<path>" for kernels without the *at calls; false if it does not fit.
bool proc_path(char (&out)[4200], int dirfd, const char* path) {
  int n = path[0] == '\0' ? std::snprintf(out, sizeof out, "/proc/self/fd/%d", dirfd)
                          : std::snprintf(out, sizeof out, "/proc/self/fd/%d/%s", dirfd, path);
  return n > 0 && static_cast<size_t>(n) < sizeof out;
}

}  // namespace

long neg_errno() noexcept {
  return -errno;
}

long getxattrat(int dirfd, const char* path, int at_flags, const char* name, void* value,
                size_t size) noexcept {
  xattr_args args{reinterpret_cast<uintptr_t>(value), static_cast<uint32_t>(size), 0};
  long r = ::syscall(SYS_getxattrat, dirfd, path, at_flags, name, &args, sizeof args);
  if (r >= 0 || errno != ENOSYS) return result(r);
  char p[4200];
  if (!proc_path(p, dirfd, path)) return -ENAMETOOLONG;
  return result((at_flags & AT_SYMLINK_NOFOLLOW) != 0 ? ::lgetxattr(p, name, value, size)
                                                      : ::getxattr(p, name, value, size));
}

long setxattrat(int dirfd, const char* path, int at_flags, const char* name, const void* value,
                size_t size, int flags) noexcept {
  xattr_args args{reinterpret_cast<uintptr_t>(value), static_cast<uint32_t>(size),
                  static_cast<uint32_t>(flags)};
  long r = ::syscall(SYS_setxattrat, dirfd, path, at_flags, name, &args, sizeof args);
  if (r >= 0 || errno != ENOSYS) return result(r);
  char p[4200];
  if (!proc_path(p, dirfd, path)) return -ENAMETOOLONG;
  return result((at_flags & AT_SYMLINK_NOFOLLOW) != 0 ? ::lsetxattr(p, name, value, size, flags)
                                                      : ::setxattr(p, name, value, size, flags));
}

long listxattrat(int dirfd, const char* path, int at_flags, char* list, size_t size) noexcept {
  long r = ::syscall(SYS_listxattrat, dirfd, path, at_flags, list, size);
  if (r >= 0 || errno != ENOSYS) return result(r);
  char p[4200];
  if (!proc_path(p, dirfd, path)) return -ENAMETOOLONG;
  return result((at_flags & AT_SYMLINK_NOFOLLOW) != 0 ? ::llistxattr(p, list, size)
                                                      : ::listxattr(p, list, size));
}

long removexattrat(int dirfd, const char* path, int at_flags, const char* name) noexcept {
  long r = ::syscall(SYS_removexattrat, dirfd, path, at_flags, name);
  if (r >= 0 || errno != ENOSYS) return result(r);
  char p[4200];
  if (!proc_path(p, dirfd, path)) return -ENAMETOOLONG;
  return result((at_flags & AT_SYMLINK_NOFOLLOW) != 0 ? ::lremovexattr(p, name)
                                                      : ::removexattr(p, name));
}

long fchmodat2(int dirfd, const char* path, mode_t mode, int flags) noexcept {
  long r = ::syscall(SYS_fchmodat2, dirfd, path, mode, flags);
  if (r >= 0 || errno != ENOSYS) return result(r);
  // Before 6.6: chmod follows the magic link to the object itself.
  char p[4200];
  if (!proc_path(p, dirfd, path)) return -ENAMETOOLONG;
  return result(::chmod(p, mode));
}

}  // namespace host
}  // namespace sandfs::passthrough
