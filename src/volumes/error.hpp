// Errors of the volume service: a stable machine-readable code and a message a person can act on.
//
// The filesystem layers below speak errnos; this layer speaks codes, because its callers are HTTP
// clients and a CLI (src/http maps each code to one HTTP status). An Outcome<T> is a value or an
// Error; nothing in src/volumes throws for an ordinary failure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/expected.hpp"

namespace sandfs::volumes {

enum class ErrorCode : uint8_t {
  invalid_request,        // malformed input the caller can fix (bad JSON field, bad size, ...)
  invalid_name,           // a volume name outside ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$
  invalid_config,         // a valid request that asks for something contradictory
  invalid_path,           // a file path that is empty where one is needed, has NUL, ...
  path_escape,            // a file path that would leave the volume (.., absolute, symlinks)
  volume_not_found,       //
  volume_already_exists,  //
  volume_in_use,          // an active mount uses the volume
  file_not_found,         //
  file_exists,            //
  not_a_directory,        //
  is_a_directory,         //
  directory_not_empty,    //
  quota_exceeded,         // the volume's quota (or a tmpfs capacity) would be exceeded
  payload_too_large,      // a request body over the server's limit
  unsupported,            // e.g. file operations on a disk volume
  mount_not_found,        //
  unauthorized,           // a missing or wrong bearer token (HTTP edge only)
  internal,               // a host failure the caller cannot fix (EIO, a SQLite error, ...)
};

// "volume_not_found", ...
std::string_view code_name(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
};

// The code for a host errno met while doing `what` on a volume's files (ENOENT → file_not_found,
// ELOOP/EXDEV from RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS → path_escape, ENOSPC/EDQUOT →
// quota_exceeded, anything unexpected → internal), with a message naming `what` and the errno.
Error error_from_errno(int err, std::string_view what);

struct Done {};

template <class T>
using Outcome = Expected<T, Error>;

}  // namespace sandfs::volumes
