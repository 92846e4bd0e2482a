// sandfsd serve: the volume store, the mount manager and the HTTP admin API in one process.
#pragma once

#include "cli/options.hpp"

namespace sandfs::cli {

// Runs until SIGINT/SIGTERM/SIGHUP; returns the exit status.
int run_serve(const ServeCommand& command);

}  // namespace sandfs::cli
