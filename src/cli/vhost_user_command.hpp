// `sandfsd vhost-user`: serve a backend to VMs over vhost-user-fs sockets.
#pragma once

#include "cli/options.hpp"

namespace sandfs::cli {

// Returns the process exit code.
int run_vhost_user(const MountCommand& command);

}  // namespace sandfs::cli
