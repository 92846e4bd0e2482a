#include "volumes/error.hpp"

#include <cerrno>
#include <cstring>

namespace sandfs::volumes {

std::string_view code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_request:
      return "invalid_request";
    case ErrorCode::invalid_name:
      return "invalid_name";
    case ErrorCode::invalid_config:
      return "invalid_config";
    case ErrorCode::invalid_path:
      return "invalid_path";
    case ErrorCode::path_escape:
      return "path_escape";
    case ErrorCode::volume_not_found:
      return "volume_not_found";
    case ErrorCode::volume_already_exists:
      return "volume_already_exists";
    case ErrorCode::volume_in_use:
      return "volume_in_use";
    case ErrorCode::file_not_found:
      return "file_not_found";
    case ErrorCode::file_exists:
      return "file_exists";
    case ErrorCode::not_a_directory:
      return "not_a_directory";
    case ErrorCode::is_a_directory:
      return "is_a_directory";
    case ErrorCode::directory_not_empty:
      return "directory_not_empty";
    case ErrorCode::quota_exceeded:
      return "quota_exceeded";
    case ErrorCode::payload_too_large:
      return "payload_too_large";
    case ErrorCode::unsupported:
      return "unsupported";
    case ErrorCode::mount_not_found:
      return "mount_not_found";
    case ErrorCode::unauthorized:
      return "unauthorized";
    case ErrorCode::internal:
      return "internal";
  }
  return "internal";
}

namespace {

ErrorCode code_for_errno(int err) {
  switch (err) {
    case ENOENT:
      return ErrorCode::file_not_found;
    case EEXIST:
      return ErrorCode::file_exists;
    case ENOTDIR:
      return ErrorCode::not_a_directory;
    case EISDIR:
      return ErrorCode::is_a_directory;
    case ENOTEMPTY:
      return ErrorCode::directory_not_empty;
    // What openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) answers for a path
    // that would leave the root or pass a symlink or a mount point.
    case ELOOP:
    case EXDEV:
      return ErrorCode::path_escape;
    case ENOSPC:
    case EDQUOT:
      return ErrorCode::quota_exceeded;
    case ENAMETOOLONG:
      return ErrorCode::invalid_path;
    default:
      return ErrorCode::internal;
  }
}

}  // namespace

Error error_from_errno(int err, std::string_view what) {
  // strerrordesc_np and strerrorname_np (unlike strerror) are thread-safe and never allocate.
  const char* desc = ::strerrordesc_np(err);
  const char* name = ::strerrorname_np(err);
  std::string message(what);
  message += ": ";
  message += desc != nullptr ? desc : "unknown error";
  message += " (";
  message += name != nullptr ? name : "errno " + std::to_string(err);
  message += ')';
  return Error{code_for_errno(err), std::move(message)};
}

}  // namespace sandfs::volumes
