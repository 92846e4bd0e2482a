#include "cli/process_setup.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>

#include "core/log.hpp"

namespace sandfs::cli {

void raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  const rlim_t before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) == 0) {
    SANDFS_LOG(debug) << "open file limit raised from " << before << " to " << lim.rlim_cur;
  }
}

UniqueFd take_stop_signals() {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return UniqueFd(::signalfd(-1, &signals, SFD_CLOEXEC));
}

bool ready_fd_usable(const std::optional<int>& ready_fd, const char* program) {
  if (!ready_fd || ::fcntl(*ready_fd, F_GETFD) >= 0) return true;
  std::fprintf(stderr, "%s: --ready-fd %d: not an open file descriptor\n", program, *ready_fd);
  return false;
}

void signal_ready(const std::optional<int>& ready_fd) {
  if (!ready_fd) return;
  const char line[] = "ready\n";
  [[maybe_unused]] const ssize_t n = ::write(*ready_fd, line, sizeof line - 1);
  ::close(*ready_fd);
}

}  // namespace sandfs::cli
