// Internal to VolumeFiles: confined resolution below a volume root, errno → Error, and the
// fd-only tree walks (recursive removal, listing, the quota count).
//
// Everything here works on fds: a directory is reached from the root fd with openat2 under
// `confined_resolve`, and below a directory fd a child is opened by name with O_NOFOLLOW and its
// device compared with the root's, so a symlink or another mount planted by a guest is never
// entered, and a rename done concurrently by a guest can only move us somewhere else inside the
// same directory tree, never out of it.
#pragma once

#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "volumes/error.hpp"
#include "volumes/volume_files.hpp"

namespace sandfs::volumes::detail {

inline constexpr uint64_t confined_resolve =
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

// Limits of the walks. Beyond the list limits a listing is invalid_request (the caller asks for
// a smaller part of the tree) rather than an answer that exhausts memory.
inline constexpr size_t max_list_entries = 100'000;
inline constexpr int max_list_depth = 64;  // directory levels below the listed one
// Recursive removal holds one fd per level; a subtree deeper than this is first moved up to the
// top of the tree being removed (renameat inside it) and removed from there, so any depth works
// with a bounded number of fds and a bounded stack.
inline constexpr int max_remove_depth = 32;

// A normalised path ("" is the root) as its parent directory and last component.
struct SplitPath {
  std::string parent;  // "" for a child of the root
  std::string leaf;    // never empty
};
SplitPath split_parent(const std::string& normalized);

// openat2(dirfd, rel or ".", flags | O_CLOEXEC, confined_resolve): an fd or -errno. A symlink
// as the last component is ELOOP like any other (RESOLVE_NO_SYMLINKS), except with O_PATH |
// O_NOFOLLOW, which opens the link itself. (Not O_NOFOLLOW with O_DIRECTORY: a final symlink is
// then ENOTDIR, which would hide that a symlink was refused.)
int open_confined(int dirfd, const std::string& rel, int flags);

// Opens the regular file `rel` below `dirfd` for I/O (`flags`: O_RDONLY or O_WRONLY, plus
// O_CLOEXEC added), filling `st`. It is first pinned with an O_PATH fd and checked, then that very
// inode is reopened through /proc/self/fd, so nothing but a regular file is ever opened for I/O
// (opening a guest's FIFO blocks, opening a device can act on it). -ELOOP for a symlink, -EISDIR
// for a directory, -ENODEV for anything else that is not a regular file, or another -errno.
// Without /proc: a confined open with O_NONBLOCK, checked after the fact.
int open_regular_confined(int dirfd, const std::string& rel, int flags, struct stat& st);

// chmod of dirfd/name that never follows a symlink there: 0 or -errno.
int chmod_nofollow(int dirfd, const char* name, mode_t mode);

// A 64-bit random value in hex, for hidden temporary names.
std::string random_hex();

// The Error for a host errno met doing `what` (ELOOP/EXDEV from confined resolution are
// path_escape; the rest follows error_from_errno).
Error files_error(int err, std::string_view what);
Error make_error(ErrorCode code, std::string message);

FileStat to_file_stat(const struct stat& st, std::string path);

// What a guest of a PassthroughFs mount sees, where it differs from the host: the owner, group,
// permission bits and file type in the object's ownership record (user.sandfs.stat), if it has a
// well-formed one. `dir_fd` + `name` name the object (`name` empty: `dir_fd` itself, which may be
// an O_PATH fd); a final symlink is never followed. Without a record `out` is left as it is.
void apply_ownership_record(int dir_fd, const std::string& name, const struct stat& st,
                            FileStat& out);

// Removes everything inside the directory `dir_fd` (left in place, empty), never following a
// symlink nor entering another device than `dev`. Directories without u+rwx get it first (a
// guest may leave 0555 or 0000 directories). `freed` is called with the size of each regular file
// whose last link went. `rel` names dir_fd in messages.
Outcome<Done> clear_directory(int dir_fd, dev_t dev, const std::string& rel,
                              const std::function<void(uint64_t)>& freed);

// The entries below the directory `dir_fd` (named `rel`), each directory's children sorted by
// name and listed right after it; recursion stays on device `dev` and never follows a symlink.
Outcome<std::vector<FileStat>> list_directory(int dir_fd, dev_t dev, const std::string& rel,
                                              bool recursive);

// The bytes stored under the root: the sizes of its regular files, each (dev, ino) once.
// Unreadable parts count as empty.
uint64_t count_stored_bytes(int root_fd);

}  // namespace sandfs::volumes::detail
