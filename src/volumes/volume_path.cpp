// The lexical path check and the confined-resolution helpers of VolumeFiles.
//
// Policy on a leading '/': the reference's two SDKs disagree (one rejects absolute paths, the
// other strips one '/' and treats the rest as relative). We reject: a client that sends "/etc"
// meaning the volume's "etc" gets a clear path_escape instead of an operation on a path it did
// not write, and "//x" vs "/x" vs "x" never have to be told apart.
#include "volumes/volume_path.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "backends/passthrough/ownership_record.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/unique_fd.hpp"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452  // Linux 6.6; glibc 2.36's headers predate it
#endif

namespace sandfs::volumes {

Outcome<std::string> normalize_volume_path(std::string_view path) {
  if (path.find('\0') != std::string_view::npos) {
    return Error{ErrorCode::invalid_path, "the path contains a NUL byte"};
  }
  if (path.size() >= PATH_MAX) {
    return Error{ErrorCode::invalid_path,
                 "the path is longer than " + std::to_string(PATH_MAX - 1) + " bytes"};
  }
  if (!path.empty() && path.front() == '/') {
    return Error{ErrorCode::path_escape,
                 "absolute paths are not accepted: give the path relative to the volume root"};
  }
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      // Checked at every step, not on the result: "a/../../x" climbs out even though "x" is
      // below the root lexically, and "a" need not exist for the kernel to resolve it so.
      if (parts.empty()) {
        return Error{ErrorCode::path_escape,
                     "'" + std::string(path) + "': '..' would climb above the volume root"};
      }
      parts.pop_back();
      continue;
    }
    if (part.size() > NAME_MAX) {
      return Error{ErrorCode::invalid_path,
                   "a path component is longer than " + std::to_string(NAME_MAX) + " bytes"};
    }
    parts.push_back(part);
  }
  std::string out;
  out.reserve(path.size());
  for (const std::string_view part : parts) {
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;
}

namespace detail {

SplitPath split_parent(const std::string& normalized) {
  const size_t slash = normalized.rfind('/');
  if (slash == std::string::npos) return {"", normalized};
  return {normalized.substr(0, slash), normalized.substr(slash + 1)};
}

int open_confined(int dirfd, const std::string& rel, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = confined_resolve;
  const char* p = rel.empty() ? "." : rel.c_str();
  for (;;) {
    const long fd = ::syscall(SYS_openat2, dirfd, p, &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    // EAGAIN: a rename elsewhere on the filesystem raced with a RESOLVE_BENEATH walk through
    // "..": openat2 asks to retry. We never pass ".." (paths are normalised), but be safe.
    if (errno != EAGAIN && errno != EINTR) return -errno;
  }
}

int open_regular_confined(int dirfd, const std::string& rel, int flags, struct stat& st) {
  const int pin_fd = open_confined(dirfd, rel, O_PATH | O_NOFOLLOW);
  if (pin_fd < 0) return pin_fd;
  UniqueFd pin(pin_fd);
  if (::fstat(pin.get(), &st) != 0) return -errno;
  if (S_ISLNK(st.st_mode)) return -ELOOP;
  if (S_ISDIR(st.st_mode)) return -EISDIR;
  if (!S_ISREG(st.st_mode)) return -ENODEV;
  char proc[64];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", pin.get());
  int fd = ::open(proc, flags | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) return fd;
  if (errno != ENOENT && errno != EACCES) return -errno;
  fd = open_confined(dirfd, rel, flags | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return fd;
  UniqueFd file(fd);
  struct stat now {};
  if (::fstat(file.get(), &now) != 0) return -errno;
  if (!S_ISREG(now.st_mode)) return S_ISDIR(now.st_mode) ? -EISDIR : -ENODEV;
  st = now;
  ::fcntl(file.get(), F_SETFL, ::fcntl(file.get(), F_GETFL) & ~O_NONBLOCK);
  return file.release();
}

int chmod_nofollow(int dirfd, const char* name, mode_t mode) {
  if (::syscall(SYS_fchmodat2, dirfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  if (errno != ENOSYS) return -errno;
  // Before Linux 6.6: pin the inode with an O_PATH fd (never a symlink's target), then chmod it
  // through its /proc magic link, which names exactly that inode.
  UniqueFd fd(::openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return -errno;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return -errno;
  if (S_ISLNK(st.st_mode)) return -EOPNOTSUPP;
  char proc[64];
  std::snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd.get());
  return ::chmod(proc, mode) == 0 ? 0 : -errno;
}

std::string random_hex() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
    // Not secret, only unlikely to collide (O_EXCL catches a collision anyway).
    static std::atomic<uint64_t> counter{0};
    v = static_cast<uint64_t>(::getpid()) << 32 ^ counter.fetch_add(1) ^
        static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&v));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

Error make_error(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

Error files_error(int err, std::string_view what) {
  if (err < 0) err = -err;
  if (err == ELOOP || err == EXDEV) {
    return Error{ErrorCode::path_escape,
                 std::string(what) +
                     ": a symlink or another mount is in the way, and it is "
                     "never followed out of the volume"};
  }
  return error_from_errno(err, what);
}

void apply_ownership_record(int dir_fd, const std::string& name, const struct stat& st,
                            FileStat& out) {
  // Records live on host files and directories only (see ownership_record.hpp).
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return;
  // Through the fd's /proc link, which works for O_PATH fds too. With a name, lgetxattr does not
  // follow it if it became a symlink since it was stat'ed; without one, getxattr must follow the
  // /proc magic link itself to reach the object.
  const std::string at =
      "/proc/self/fd/" + std::to_string(dir_fd) + (name.empty() ? "" : "/") + name;
  const std::string attr(passthrough::default_stat_xattr);
  char buffer[passthrough::record_read_buffer];
  const ssize_t n = name.empty() ? ::getxattr(at.c_str(), attr.c_str(), buffer, sizeof buffer)
                                 : ::lgetxattr(at.c_str(), attr.c_str(), buffer, sizeof buffer);
  if (n < 0) return;
  Result<passthrough::Record> record =
      passthrough::decode_record(std::span<const char>(buffer, static_cast<size_t>(n)));
  if (!record || !passthrough::record_fits(*record, st.st_mode & S_IFMT)) return;
  out.uid = record->uid;
  out.gid = record->gid;
  out.mode = record->mode & 07777;
  switch (record->type()) {
    case S_IFREG:
      out.kind = FileKind::file;
      break;
    case S_IFDIR:
      out.kind = FileKind::directory;
      break;
    case S_IFLNK:
      out.kind = FileKind::symlink;  // strict mode keeps a guest's symlink as a small file
      break;
    default:
      out.kind = FileKind::other;  // a guest's FIFO, socket or device
      break;
  }
}

FileStat to_file_stat(const struct stat& st, std::string path) {
  FileStat out;
  out.path = std::move(path);
  if (S_ISREG(st.st_mode)) {
    out.kind = FileKind::file;
  } else if (S_ISDIR(st.st_mode)) {
    out.kind = FileKind::directory;
  } else if (S_ISLNK(st.st_mode)) {
    out.kind = FileKind::symlink;
  } else {
    out.kind = FileKind::other;
  }
  out.size = static_cast<uint64_t>(st.st_size);
  out.mode = st.st_mode & 07777;
  out.uid = st.st_uid;
  out.gid = st.st_gid;
  const auto ms = [](const timespec& ts) {
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  };
  out.atime_ms = ms(st.st_atim);
  out.mtime_ms = ms(st.st_mtim);
  out.ctime_ms = ms(st.st_ctim);
  return out;
}

}  // namespace detail
}  // namespace sandfs::volumes
