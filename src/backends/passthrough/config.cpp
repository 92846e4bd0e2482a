// make_passthrough(): the start-up checks, with messages a person can act on. Blocking syscalls
// are fine here (nothing is served yet); request paths never come here.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"

namespace sandfs::passthrough {

bool parse_stat_virtualization(std::string_view text, StatVirtualization& out) {
  if (text == "strict") {
    out = StatVirtualization::strict;
  } else if (text == "relaxed") {
    out = StatVirtualization::relaxed;
  } else if (text == "off") {
    out = StatVirtualization::off;
  } else {
    return false;
  }
  return true;
}

std::string_view to_string(StatVirtualization v) {
  switch (v) {
    case StatVirtualization::strict:
      return "strict";
    case StatVirtualization::relaxed:
      return "relaxed";
    case StatVirtualization::off:
      return "off";
  }
  return "?";
}

bool parse_host_permissions(std::string_view text, HostPermissions& out) {
  if (text == "private") {
    out = HostPermissions::private_;
  } else if (text == "mirror") {
    out = HostPermissions::mirror;
  } else {
    return false;
  }
  return true;
}

std::string_view to_string(HostPermissions p) {
  return p == HostPermissions::mirror ? "mirror" : "private";
}

namespace {

// The process umask without changing it (umask(2) can only set): /proc/self/status has it.
uint32_t read_umask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0)
      return static_cast<uint32_t>(std::stoul(line.substr(6), nullptr, 8));
  }
  const mode_t old = ::umask(022);
  ::umask(old);
  return old;
}

MakeResult failure(int err, std::string message) {
  MakeResult r;
  r.err = err;
  r.error = std::move(message);
  return r;
}

}  // namespace

MakeResult make_passthrough(PassthroughConfig config) {
  if (config.stat_virtualization == StatVirtualization::off &&
      config.host_permissions == HostPermissions::mirror) {
    return failure(EINVAL,
                   "--stat-virtualization off cannot be combined with --host-permissions mirror: "
                   "with off the guest's permission bits already go to the host; use one or the "
                   "other");
  }
  const std::string& x = config.stat_xattr;
  if (x.empty() || x.size() > 255 || x.find('.') == std::string::npos || x.front() == '.' ||
      x.back() == '.' || x.starts_with("system.")) {
    return failure(EINVAL, "--stat-xattr " + x +
                               ": not a usable xattr name (want NAMESPACE.NAME, e.g. " +
                               std::string(default_stat_xattr) + ")");
  }
  if (config.max_cached_fds == 0) config.max_cached_fds = 1;

  RootOpen root = open_root(config.root, config.follow_root_symlinks);
  if (root.fd < 0) return failure(root.err, root.error);
  auto close_root = [&] { ::close(root.fd); };

  struct statx stx {};
  if (::statx(root.fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
              STATX_BASIC_STATS | STATX_MNT_ID | STATX_BTIME, &stx) != 0) {
    const int err = errno;
    close_root();
    return failure(err, config.root + ": " + std::strerror(err));
  }
  if ((stx.stx_mask & STATX_MNT_ID) == 0) {
    close_root();
    return failure(ENOTSUP, "statx does not report mount ids on this kernel (Linux 5.8+ needed)");
  }

  const int proc_dir = ::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (proc_dir < 0) {
    const int err = errno;
    close_root();
    return failure(
        err, std::string("cannot open /proc/self/fd (is /proc mounted?): ") + std::strerror(err));
  }
  char root_name[16];
  std::snprintf(root_name, sizeof root_name, "%d", root.fd);
  // Files are opened for I/O through /proc/self/fd: make sure that works here.
  int probe_fd = ::openat(proc_dir, root_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (probe_fd < 0) {
    const int err = errno;
    close_root();
    ::close(proc_dir);
    return failure(err,
                   config.root + ": cannot reopen through /proc/self/fd: " + std::strerror(err));
  }
  ::close(probe_fd);

  if (config.stat_virtualization == StatVirtualization::strict) {
    const std::string space = x.substr(0, x.find('.'));
    const std::string probe = space + ".sandfs.probe";
    long r = 0;
    if (config.readonly) {
      // Nothing may be written: a read tells "unsupported" (EOPNOTSUPP) from "absent" too.
      char byte;
      r = host::getxattrat(proc_dir, root_name, 0, x.c_str(), &byte, 0);
      if (r == -ENODATA) r = 0;
    } else {
      const char one = 1;
      r = host::setxattrat(proc_dir, root_name, 0, probe.c_str(), &one, 1, 0);
      if (r >= 0) host::removexattrat(proc_dir, root_name, 0, probe.c_str());
    }
    if (r < 0) {
      const int err = static_cast<int>(-r);
      close_root();
      ::close(proc_dir);
      if (err == EOPNOTSUPP) {
        return failure(err, "the filesystem under " + config.root + " does not support " + space +
                                " xattrs; use --stat-virtualization relaxed or off");
      }
      return failure(err, "cannot store ownership records (" + x + ") under " + config.root + ": " +
                              std::strerror(err) + "; use --stat-virtualization relaxed or off");
    }
  }

  const uint32_t umask = read_umask();
  auto fs = std::make_shared<PassthroughFs>(std::move(config), root.fd, proc_dir, stx, umask);
  MakeResult ok;
  ok.fs = std::move(fs);
  return ok;
}

}  // namespace sandfs::passthrough
