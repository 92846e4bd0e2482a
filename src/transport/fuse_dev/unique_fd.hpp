// The fuse_dev transport's name for the owned fd (core/unique_fd.hpp).
#pragma once

#include "core/unique_fd.hpp"

namespace sandfs::fuse_dev {

using UniqueFd = sandfs::UniqueFd;

}  // namespace sandfs::fuse_dev
