// Host syscalls that glibc 2.36 has no wrapper for, and the few blocking calls the backend runs on
// io::Ring::run_blocking. Every function here returns what run_blocking wants: a value >= 0, or
// -errno. They block, so they are called only inside run_blocking jobs (or at start-up).
//
// The *xattrat calls (Linux 6.13) do not accept O_PATH fds with AT_EMPTY_PATH (fdget refuses
// them with EBADF, checked on 6.18), so an inode's xattrs are reached as
// xattrat(proc_self_fd_dir, "<fd>", 0): the magic link resolves to exactly the object the O_PATH
// fd holds, without opening it (a host FIFO never blocks us) and without following it further
// when the object is itself a symlink. On kernels without the *xattrat calls the same path is
// used through the classic path calls on "/proc/self/fd/<dirfd>/<path>".
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>

namespace sandfs::passthrough::host {

long getxattrat(int dirfd, const char* path, int at_flags, const char* name, void* value,
                size_t size) noexcept;
long setxattrat(int dirfd, const char* path, int at_flags, const char* name, const void* value,
                size_t size, int flags) noexcept;
long listxattrat(int dirfd, const char* path, int at_flags, char* list, size_t size) noexcept;
long removexattrat(int dirfd, const char* path, int at_flags, const char* name) noexcept;
// fchmodat2 (Linux 6.6): with AT_EMPTY_PATH it changes the mode of an O_PATH fd's object.
long fchmodat2(int dirfd, const char* path, mode_t mode, int flags) noexcept;

// -errno of the last libc call, for wrappers that return -1.
long neg_errno() noexcept;

}  // namespace sandfs::passthrough::host
