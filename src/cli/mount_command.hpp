// `sandfsd mount`: mount a backend through /dev/fuse and serve it in the foreground.
#pragma once

#include "cli/options.hpp"

namespace sandfs::cli {

// Returns the process exit code.
int run_mount(const MountCommand& command);

}  // namespace sandfs::cli
