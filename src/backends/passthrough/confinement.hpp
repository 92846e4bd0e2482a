// Confinement: how the backend reaches host objects without ever leaving its root.
//
// ## Rules
// * Every name a guest sends is one path component, checked by check_name() before any syscall:
//   empty is EINVAL, "." / ".." and anything containing '/' are EPERM, NUL is EINVAL.
// * A name is resolved relative to the O_PATH fd of its parent directory with
//   openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) and O_NOFOLLOW: the
//   kernel itself refuses to leave the directory, to follow any symlink (a trailing symlink is
//   opened as itself, O_PATH) and to jump through /proc magic links. Creation calls (mkdirat,
//   symlinkat, unlinkat, renameat2, linkat, statx by name) take the same parent fd and a single
//   checked component, and none of them follows a trailing symlink.
// * Re-walks of a remembered path (inode_store.hpp) use the same openat2 flags on a multi-component
//   path below a cached ancestor fd; RESOLVE_BENEATH keeps every step below that ancestor, and the
//   result is accepted only if statx shows the identity we expect.
// * Files are opened for I/O by reopening their O_PATH fd through /proc/self/fd/N (reopen()): the
//   kernel resolves the magic link straight to the object the fd holds, with no path walk that a
//   concurrent rename could redirect. Only regular files and directories are ever reopened: a host
//   symlink answers ELOOP, and a host FIFO, socket or device is never opened at all (an open of a
//   FIFO blocks until a peer appears; a device open may have side effects). Metadata of those goes
//   through path-style calls on the magic link (host_calls.hpp), which do not open anything.
// * The root itself is opened once at start-up by open_root(): without follow_symlinks, every
//   component of the configured path must be a real directory (one openat2 with
//   RESOLVE_NO_SYMLINKS from "/" or the working directory), so a symlink planted in place of a
//   tenant's directory cannot redirect the export.
#pragma once

#include <fcntl.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "backends/passthrough/host_fd.hpp"
#include "core/filesystem.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

inline constexpr uint64_t beneath_resolve =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// 0 when `name` is an acceptable single component, else the errno to answer.
int check_name(std::string_view name);

// openat2(dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC, beneath_resolve). `path` must outlive the
// call (it is awaited, so a local string is fine).
Task<Result<SharedFd>> open_beneath(int dirfd, const char* path, uint64_t flags, uint64_t mode = 0);

// Opens the object behind `fd` anew with `flags` (no O_CREAT), through /proc/self/fd.
// `proc_fd_dir` is an O_PATH fd on /proc/self/fd. The caller guarantees the object is a regular
// file or a directory.
Task<Result<SharedFd>> reopen(int proc_fd_dir, const HostFd& fd, uint64_t flags);

struct RootOpen {
  int fd = -1;        // O_PATH | O_DIRECTORY, owned by the caller
  int err = 0;        // errno when fd is -1
  std::string error;  // for a person, when fd is -1
};
// Blocking: start-up only.
RootOpen open_root(const std::string& path, bool follow_symlinks);

}  // namespace sandfs::passthrough
