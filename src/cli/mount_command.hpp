// `sandfsd mount`: mount a backend through /dev/fuse and serve it in the foreground.
#pragma once

#include <memory>
#include <string>

#include "cli/options.hpp"
#include "core/filesystem.hpp"

namespace sandfs::cli {

struct BackendOrError {
  std::shared_ptr<Filesystem> fs;
  std::string error;  // one line for a person, when fs is null
};

// Builds the backend `command` asks for (blocking: start-up checks, opening --root). A backend
// that cannot start (a --root that is missing, not a directory or behind a symlink, strict mode
// without xattrs, off + mirror, ...) is an error, not an exception.
BackendOrError make_backend(const MountCommand& command);

// Returns the process exit code.
int run_mount(const MountCommand& command);

}  // namespace sandfs::cli
