#include "cli/mount_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "backends/dualfs/dualfs.hpp"
#include "backends/memfs/memfs.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "cli/process_setup.hpp"
#include "core/log.hpp"
#include "core/session.hpp"
#include "core/units.hpp"
#include "transport/fuse_dev/fuse_dev_server.hpp"
#include "transport/fuse_dev/fuse_mount.hpp"

namespace sandfs::cli {

namespace {

// One side of a dual mount; a passthrough side uses the backend's defaults.
BackendOrError make_dual_side(const DualSide& side, bool readonly, const MountCommand& c,
                              std::string_view flag) {
  MountCommand one;
  one.cache = c.cache;
  if (side.kind == DualSide::Kind::memfs) {
    one.backend = Backend::memfs;
    one.capacity_bytes = side.capacity_bytes;
  } else {
    one.backend = Backend::passthrough;
    one.passthrough.root = side.root;
    one.passthrough.readonly = readonly;
  }
  BackendOrError out = make_backend(one);
  if (!out.fs) out.error = std::string(flag) + ": " + out.error;
  return out;
}

}  // namespace

BackendOrError make_backend(const MountCommand& c) {
  BackendOrError out;
  switch (c.backend) {
    case Backend::memfs: {
      memfs::MemFsConfig config;
      config.capacity_bytes = c.capacity_bytes;
      config.max_inodes = c.max_inodes;
      config.cache = c.cache;
      config.writeback = c.writeback;
      // The mounting user owns the root, so a user mount (through fusermount3) is writable.
      config.root_uid = ::getuid();
      config.root_gid = ::getgid();
      try {
        out.fs = memfs::make_memfs(config);
      } catch (const std::exception& e) {
        out.error = std::string("cannot create the memfs backend: ") + e.what();
      }
      return out;
    }
    case Backend::passthrough: {
      const PassthroughOptions& p = c.passthrough;
      passthrough::PassthroughConfig config;
      config.root = p.root;
      config.stat_virtualization = p.stat_virtualization;
      config.host_permissions = p.host_permissions;
      config.readonly = p.readonly;
      config.quota_bytes = p.quota_bytes;
      config.cache = c.cache;
      config.writeback = c.writeback;
      config.follow_root_symlinks = p.follow_root_symlinks;
      if (p.stat_xattr) config.stat_xattr = *p.stat_xattr;
      passthrough::MakeResult made = passthrough::make_passthrough(std::move(config));
      if (made) {
        out.fs = std::move(made.fs);
      } else {
        // The backend's message says what is wrong and usually names the path; one line.
        std::string why = made.error.empty() ? std::strerror(made.err) : made.error;
        std::replace(why.begin(), why.end(), '\n', ' ');
        out.error = why.find(p.root) != std::string::npos
                        ? "cannot serve --root: " + why
                        : "cannot serve --root " + p.root + ": " + why;
      }
      return out;
    }
    case Backend::dual: {
      if (!c.dual.a || !c.dual.b) {
        out.error = "--backend dual needs --a and --b";
        return out;
      }
      BackendOrError a = make_dual_side(*c.dual.a, false, c, "--a");
      if (!a.fs) return a;
      BackendOrError b = make_dual_side(*c.dual.b, c.dual.b_readonly, c, "--b");
      if (!b.fs) return b;
      dualfs::DualFsConfig config;
      config.a = std::move(a.fs);
      config.b = std::move(b.fs);
      config.policy = dualfs::parse_policy(c.dual.policy);
      if (!config.policy) {
        out.error = "unknown --policy " + c.dual.policy;
        return out;
      }
      // A host directory keeps whiteouts across remounts; a memfs upper forgets everything.
      config.whiteouts = c.dual.a->kind == DualSide::Kind::passthrough
                             ? dualfs::WhiteoutStorage::markers
                             : dualfs::WhiteoutStorage::memory;
      config.cache = c.cache;
      out.fs = dualfs::make_dualfs(std::move(config));
      return out;
    }
  }
  out.error = "unknown backend";
  return out;
}

namespace {

std::string describe(const MountCommand& c, const fuse_dev::FuseMount& mount,
                     const fuse_dev::FuseDevServer& server) {
  std::string s = "sandfsd: mounted " + std::string(to_string(c.backend)) + " on " +
                  mount.mountpoint() + " (cache " + std::string(to_string(c.cache));
  if (c.writeback) s += " + writeback";
  s += ", " + std::to_string(server.threads()) + (server.threads() == 1 ? " thread" : " threads") +
       ", io_uring " + (server.uses_io_uring() ? "yes" : "no (thread pool)");
  if (c.backend == Backend::passthrough) {
    const PassthroughOptions& p = c.passthrough;
    s += ", root " + p.root + ", stat " + std::string(to_string(p.stat_virtualization)) +
         ", host permissions " + std::string(to_string(p.host_permissions));
    if (p.readonly) s += ", read-only";
    if (p.quota_bytes) s += ", quota " + format_size(*p.quota_bytes);
    if (p.stat_xattr) s += ", record " + *p.stat_xattr;
  }
  if (c.backend == Backend::dual && c.dual.a && c.dual.b) {
    auto side = [](const DualSide& d) {
      if (d.kind == DualSide::Kind::passthrough) return "passthrough " + d.root;
      return std::string("memfs") +
             (d.capacity_bytes ? " of " + format_size(*d.capacity_bytes) : std::string());
    };
    s += ", A " + side(*c.dual.a) + ", B " + side(*c.dual.b);
    if (c.dual.b_readonly) s += " (read-only)";
    s += ", policy " + c.dual.policy;
  }
  for (const DenyRule& d : c.deny) {
    const char* e = ::strerrorname_np(d.error);
    s += ", deny " + std::string(opcode_name(d.opcode)) + "=" +
         (e ? std::string(e) : std::to_string(d.error));
  }
  if (c.capacity_bytes) s += ", capacity " + format_size(*c.capacity_bytes);
  if (c.max_inodes) s += ", max inodes " + std::to_string(*c.max_inodes);
  s += ", max_write " + format_size(c.max_write);
  s += mount.allow_other() ? ", allow_other" : ", owner only";
  s += mount.via() == fuse_dev::FuseMount::Via::kernel ? ", via mount(2)" : ", via fusermount3";
  s += ")\n";
  return s;
}

void write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

}  // namespace

int run_mount(const MountCommand& c) {
  log::set_level(c.log_level);
  raise_fd_limit();
  if (!ready_fd_usable(c.ready_fd, "sandfsd mount")) return exit_usage;

  // Signals are taken synchronously through a signalfd on this thread. They must be blocked
  // before any server thread starts so that every thread inherits the mask.
  UniqueFd signal_fd = take_stop_signals();
  fuse_dev::UniqueFd done_fd(::eventfd(0, EFD_CLOEXEC));
  if (!signal_fd || !done_fd) {
    std::fprintf(stderr, "sandfsd: cannot set up signal handling: %s\n", std::strerror(errno));
    return exit_failure;
  }

  BackendOrError made = make_backend(c);
  if (!made.fs) {
    std::fprintf(stderr, "sandfsd: %s\n", made.error.c_str());
    return exit_failure;
  }
  std::shared_ptr<Filesystem> fs = std::move(made.fs);
  SessionOptions session_options;
  session_options.max_write = c.max_write;
  session_options.name = c.mountpoint;
  if (!c.deny.empty()) session_options.hooks.push_back(std::make_shared<DenyHook>(c.deny));
  Session session(fs, session_options);

  fuse_dev::MountConfig mount_config;
  mount_config.mountpoint = c.mountpoint;
  mount_config.allow_other = c.allow_other;
  mount_config.default_permissions = c.default_permissions;
  fuse_dev::FuseMount mount;
  try {
    mount = fuse_dev::FuseMount::mount(mount_config);
  } catch (const fuse_dev::MountError& e) {
    std::fprintf(stderr, "sandfsd: cannot mount: %s\n", e.what());
    return exit_failure;
  }

  fuse_dev::FuseDevServerOptions server_options;
  server_options.threads = c.threads;
  fuse_dev::FuseDevServer server(session, mount.take_fd(), server_options);
  const int done = done_fd.get();
  server.on_finished([done] {
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(done, &one, sizeof one);
  });
  try {
    server.start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sandfsd: cannot start serving %s: %s\n", mount.mountpoint().c_str(),
                 e.what());
    mount.unmount();
    return exit_failure;
  }

  const std::string line = describe(c, mount, server);
  write_all(STDERR_FILENO, line.data(), line.size());
  signal_ready(c.ready_fd);

  int signals_seen = 0;
  for (;;) {
    pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {done_fd.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      SANDFS_LOG(error) << "poll: " << std::strerror(errno) << "; stopping";
      server.stop();
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents == 0) continue;
    signalfd_siginfo info{};
    if (::read(signal_fd.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    const int signo = static_cast<int>(info.ssi_signo);
    if (++signals_seen > 1) {
      // The kernel aborts the connection when our /dev/fuse fds close with the process.
      std::fprintf(stderr, "sandfsd: %s again: exiting now\n", sigabbrev_np(signo));
      std::_Exit(exit_failure);
    }
    SANDFS_LOG(info) << "SIG" << sigabbrev_np(signo) << ": unmounting " << mount.mountpoint()
                     << " (open files keep it alive; signal again to exit at once)";
    if (const int e = mount.unmount(); e != 0) {
      SANDFS_LOG(error) << "unmount failed (" << std::strerror(e) << "); stopping the server";
      server.stop();
    }
  }

  server.wait();
  const auto reason = server.stop_reason();
  if (reason == fuse_dev::FuseDevServer::StopReason::unmounted) {
    mount.forget();  // the kernel already did it; something else may be mounted there now
  } else {
    mount.unmount();
  }
  const auto counters = server.counters();
  const Stats::Snapshot totals = session.stats().snapshot();
  std::string copy_ups;
  if (totals.copy_ups != 0 || totals.copy_up_failures != 0) {
    copy_ups = ", " + std::to_string(totals.copy_ups) + " copy-ups of " +
               std::to_string(totals.copy_up_bytes) + " B (" +
               std::to_string(totals.copy_up_failures) + " failed)";
  }
  SANDFS_LOG(info) << "stopped serving " << mount.mountpoint() << " ("
                   << fuse_dev::to_string(reason) << "; " << counters.requests << " requests, "
                   << counters.replies_interrupted << " interrupted" << copy_ups << ")";
  SANDFS_LOG(debug) << "statistics:\n" << session.stats().to_text();
  return reason == fuse_dev::FuseDevServer::StopReason::failed ? exit_failure : exit_ok;
}

}  // namespace sandfs::cli
