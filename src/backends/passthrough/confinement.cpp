#include "backends/passthrough/confinement.hpp"

#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sandfs::passthrough {

namespace {

open_how how_of(uint64_t flags, uint64_t mode, uint64_t resolve) {
  open_how how{};
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  return how;
}

}  // namespace

int check_name(std::string_view name) {
  if (name.empty()) return EINVAL;
  if (name.find('\0') != std::string_view::npos) return EINVAL;
  if (name == "." || name == ".." || name.find('/') != std::string_view::npos) return EPERM;
  return 0;
}

Task<Result<SharedFd>> open_beneath(int dirfd, const char* path, uint64_t flags, uint64_t mode) {
  io::Ring& ring = io::Ring::current();
  Result<int> fd = co_await ring.openat2(
      dirfd, path, how_of(flags | O_NOFOLLOW | O_CLOEXEC, mode, beneath_resolve));
  if (!fd) co_return Errno{fd.error()};
  co_return adopt_fd(*fd);
}

Task<Result<SharedFd>> reopen(int proc_fd_dir, const HostFd& fd, uint64_t flags) {
  io::Ring& ring = io::Ring::current();
  // No RESOLVE_* flags: they would refuse the magic link this relies on. O_NOFOLLOW would too.
  flags &= ~static_cast<uint64_t>(O_NOFOLLOW | O_CREAT | O_EXCL | O_TMPFILE);
  Result<int> r =
      co_await ring.openat2(proc_fd_dir, fd.proc_name(), how_of(flags | O_CLOEXEC, 0, 0));
  if (!r) co_return Errno{r.error()};
  co_return adopt_fd(*r);
}

RootOpen open_root(const std::string& path, bool follow_symlinks) {
  RootOpen out;
  if (path.empty()) {
    out.err = EINVAL;
    out.error = "no root directory given";
    return out;
  }
  auto fail = [&](int err) {
    out.err = err;
    switch (err) {
      case ENOENT:
        out.error = path + " does not exist";
        break;
      case ENOTDIR:
        out.error = path + " is not a directory";
        break;
      case ELOOP:
      case EXDEV:
        out.error = path +
                    ": a component of the path is a symbolic link; give the real path or use "
                    "--follow-root-symlinks";
        break;
      default:
        out.error = path + ": " + std::strerror(err);
    }
    return out;
  };

  if (follow_symlinks) {
    int fd = ::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail(errno);
    out.fd = fd;
    return out;
  }

  // Split into components: "." and empty ones are skipped, ".." is refused (it could climb out
  // of a directory the operator meant, and resolving it safely needs the symlinks we refuse).
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(pos, end - pos);
    if (part == "..") {
      out.err = EINVAL;
      out.error = path + ": '..' is not allowed in the root path; give the real path";
      return out;
    }
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    pos = end + 1;
  }
  const bool absolute = path[0] == '/';
  int base = absolute ? ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : AT_FDCWD;
  if (base == -1) return fail(errno);
  std::string rel;
  for (const std::string& p : parts) {
    if (!rel.empty()) rel += '/';
    rel += p;
  }
  if (rel.empty()) rel = ".";
  open_how how = how_of(O_PATH | O_DIRECTORY | O_CLOEXEC, 0, beneath_resolve);
  long fd = ::syscall(SYS_openat2, base, rel.c_str(), &how, sizeof how);
  const int err = errno;
  if (base >= 0) ::close(base);
  if (fd < 0) return fail(err);
  out.fd = static_cast<int>(fd);
  return out;
}

}  // namespace sandfs::passthrough
