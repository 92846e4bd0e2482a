// Random (version 4, RFC 4122) UUIDs in their 36-character text form: the ids of volumes and
// mounts, and the unique names of entries moved into a volume store's .trash.
#pragma once

#include <string>

#include "volumes/error.hpp"

namespace sandfs::volumes {

// 16 bytes from getrandom(2); `internal` only if the kernel cannot provide them.
Outcome<std::string> new_uuid();

}  // namespace sandfs::volumes
