#include "cli/vhost_user_command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cli/mount_command.hpp"
#include "cli/process_setup.hpp"
#include "core/io/io_threads.hpp"
#include "core/log.hpp"
#include "core/unique_fd.hpp"
#include "transport/vhost_user/server.hpp"

namespace sandfs::cli {

int run_vhost_user(const MountCommand& c) {
  log::set_level(c.log_level);
  raise_fd_limit();
  if (!ready_fd_usable(c.ready_fd, "sandfsd vhost-user")) return exit_usage;
  UniqueFd signal_fd = take_stop_signals();
  if (!signal_fd) {
    std::fprintf(stderr, "sandfsd: cannot set up signal handling: %s\n", std::strerror(errno));
    return exit_failure;
  }

  // Build one backend now, so a bad --root or an impossible combination fails at start with a
  // clear line rather than at the first connection; it serves the first connection of the
  // first socket.
  BackendOrError first = make_backend(c);
  if (!first.fs) {
    std::fprintf(stderr, "sandfsd: %s\n", first.error.c_str());
    return exit_failure;
  }
  auto spare = std::make_shared<std::shared_ptr<Filesystem>>(std::move(first.fs));
  auto spare_mu = std::make_shared<std::mutex>();

  io::IoThreads threads(c.threads);
  vhost_user::DeviceOptions options;
  options.request_queues = c.queues;
  options.session.max_write = c.max_write;
  if (!c.deny.empty()) options.session.hooks.push_back(std::make_shared<DenyHook>(c.deny));

  std::vector<std::unique_ptr<vhost_user::VhostUserServer>> servers;
  for (const std::string& path : c.socket_paths) {
    auto factory = [c, spare, spare_mu](std::string& error) -> std::shared_ptr<Filesystem> {
      {
        std::lock_guard lock(*spare_mu);
        if (*spare) return std::move(*spare);
      }
      BackendOrError made = make_backend(c);
      if (!made.fs) error = made.error;
      return made.fs;
    };
    auto server = std::make_unique<vhost_user::VhostUserServer>(threads, path, factory, options);
    try {
      server->start();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandfsd: cannot serve %s: %s\n", path.c_str(), e.what());
      for (auto& s : servers)
        s->stop();
      return exit_failure;
    }
    servers.push_back(std::move(server));
  }

  std::string line = "sandfsd: serving " + std::string(to_string(c.backend));
  if (c.backend == Backend::passthrough) line += " of " + c.passthrough.root;
  line += " as vhost-user-fs on";
  for (const auto& s : servers)
    line += " " + s->socket_path();
  line += " (" + std::to_string(c.queues) + (c.queues == 1 ? " request queue" : " request queues") +
          ", cache " + std::string(to_string(c.cache)) + ", " + std::to_string(threads.size()) +
          " threads, io_uring " + (threads.uses_io_uring() ? "yes" : "no (thread pool)") + ")\n";
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
  signal_ready(c.ready_fd);

  for (;;) {
    pollfd p{signal_fd.get(), POLLIN, 0};
    if (::poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    signalfd_siginfo info{};
    if (::read(signal_fd.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    SANDFS_LOG(info) << "SIG" << sigabbrev_np(static_cast<int>(info.ssi_signo))
                     << ": closing the sockets and their connections";
    break;
  }
  uint64_t connections = 0, requests = 0, bad = 0;
  for (auto& s : servers) {
    s->stop();
    const auto t = s->totals();
    connections += t.connections;
    requests += t.requests;
    bad += t.bad_chains;
  }
  threads.stop();
  SANDFS_LOG(info) << "stopped: " << connections << " connections, " << requests << " requests, "
                   << bad << " malformed descriptor chains dropped";
  return exit_ok;
}

}  // namespace sandfs::cli
