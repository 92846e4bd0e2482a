// Listing a child backend's directory through the Filesystem interface (opendir, readdir in
// rounds until an empty one, releasedir), for merged listings and marker loading.
#pragma once

#include <string>
#include <vector>

#include "core/filesystem.hpp"

namespace sandfs::dualfs {

struct ChildDirEntry {
  std::string name;
  InodeId ino = 0;
  uint32_t dtype = 0;
};

// Every entry of directory `dir` of `fs` but "." and "..".
Task<Result<std::vector<ChildDirEntry>>> list_child_dir(Filesystem& fs, const RequestContext& ctx,
                                                        InodeId dir);

}  // namespace sandfs::dualfs
