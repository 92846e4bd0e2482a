#include "cli/serve_command.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/process_setup.hpp"
#include "core/io/io_threads.hpp"
#include "core/log.hpp"
#include "core/unique_fd.hpp"
#include "http/server.hpp"
#include "http/token.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume_store.hpp"

namespace sandfs::cli {

namespace {

// Makes `dir` (and its parents) if missing; a directory made here is 0700: it holds the token,
// the catalog and every volume's data.
bool make_private_dir(const std::filesystem::path& dir, std::string& error) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return true;
  std::filesystem::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    error = "cannot create " + dir.string() + ": " + std::strerror(errno);
    return false;
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    error = dir.string() + " is not a directory";
    return false;
  }
  return true;
}

// Waits for SIGINT, SIGTERM or SIGHUP on the signalfd.
void wait_for_stop(int signal_fd) {
  for (;;) {
    pollfd p{signal_fd, POLLIN, 0};
    if (::poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    signalfd_siginfo info{};
    if (::read(signal_fd, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
    SANDFS_LOG(info) << "SIG" << sigabbrev_np(static_cast<int>(info.ssi_signo))
                     << ": no new requests; removing every mount";
    return;
  }
}

}  // namespace

int run_serve(const ServeCommand& c) {
  log::set_level(c.log_level);
  if (!ready_fd_usable(c.ready_fd, "sandfsd serve")) return exit_usage;
  raise_fd_limit();
  UniqueFd signal_fd = take_stop_signals();
  if (!signal_fd) {
    std::fprintf(stderr, "sandfsd: cannot set up signal handling: %s\n", std::strerror(errno));
    return exit_failure;
  }
  const std::filesystem::path data_dir = c.data_dir.empty() ? default_data_dir() : c.data_dir;
  std::string error;
  if (!make_private_dir(data_dir, error) || !make_private_dir(data_dir / "run", error)) {
    std::fprintf(stderr, "sandfsd: %s\n", error.c_str());
    return exit_failure;
  }

  auto store = volumes::VolumeStore::open(data_dir);
  if (!store) {
    std::fprintf(stderr, "sandfsd: cannot open the volume store in %s: %s\n", data_dir.c_str(),
                 store.error().message.c_str());
    return exit_failure;
  }
  auto token = http::load_or_create_token(data_dir);
  if (!token) {
    std::fprintf(stderr, "sandfsd: %s\n", token.error().message.c_str());
    return exit_failure;
  }

  io::IoThreads threads(c.threads);
  int status = exit_ok;
  {
    volumes::MountManager mounts(**store, threads, (data_dir / "run").string());
    http::ServerOptions options;
    options.listen = c.listen;
    options.unix_socket = c.unix_socket;
    options.max_connections = c.max_connections;
    options.max_upload_bytes = c.max_upload_bytes;
    options.msb_prefix = c.msb_prefix;
    options.msb_default_volume = c.msb_default_volume;
    http::Server server(**store, mounts, threads, *token, options);
    bool started = true;
    try {
      server.start();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sandfsd: %s\n", e.what());
      started = false;
      status = exit_failure;
    }
    if (started) {
      std::string where;
      if (!server.tcp_address().empty()) where = server.tcp_address();
      if (!server.unix_address().empty()) {
        where += (where.empty() ? "" : " and ") + server.unix_address();
      }
      const std::string line =
          "sandfsd: serving the API on " + where + " (data " + data_dir.string() + ", token " +
          (data_dir / http::token_file_name).string() + ", " + std::to_string(threads.size()) +
          " threads, io_uring " + (threads.uses_io_uring() ? "yes" : "no (thread pool)") + ")\n";
      [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line.data(), line.size());
      signal_ready(c.ready_fd);
      wait_for_stop(signal_fd.get());
    }
    server.stop();
    size_t removed = 0;
    for (const auto& m : mounts.list()) {
      auto r = mounts.remove(m.id);
      if (r) {
        ++removed;
      } else {
        SANDFS_LOG(warn) << "mount " << m.id << ": " << r.error().message;
      }
    }
    if (started) {
      SANDFS_LOG(info) << "stopped: " << removed << " mounts removed";
    }
  }
  threads.stop();
  return status;
}

}  // namespace sandfs::cli
