// What every serving command (mount, vhost-user) does before it starts threads.
#pragma once

#include <optional>

#include "core/unique_fd.hpp"

namespace sandfs::cli {

// Raises the soft RLIMIT_NOFILE to the hard limit: every open guest file is a host fd, and the
// usual 1024 runs out long before the guests' own limits do (the hard limit stays the operator's).
void raise_fd_limit();

// Ignores SIGPIPE and blocks SIGINT, SIGTERM and SIGHUP, returning a signalfd that reports them
// (invalid, with errno set, on failure). Call before any thread starts so all inherit the mask.
UniqueFd take_stop_signals();

// Whether --ready-fd (if given) names an open descriptor; prints the error for `program`.
bool ready_fd_usable(const std::optional<int>& ready_fd, const char* program);

// Writes "ready\n" to --ready-fd (if given) and closes it.
void signal_ready(const std::optional<int>& ready_fd);

}  // namespace sandfs::cli
