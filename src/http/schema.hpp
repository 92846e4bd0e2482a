// The admin API's JSON: request bodies parsed into the volume service's types, its results
// written out, and errors as {"error":{"code","message"}} with their HTTP status. nlohmann/json
// stays inside schema.cpp: this header speaks strings.
//
// Parsing is strict: a field of the wrong type, an unknown field or a value out of range is
// invalid_request naming the field ("source.quota_mib: must be a positive integer"), so a typo
// in a client never silently falls back to a default.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "volumes/error.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume.hpp"
#include "volumes/volume_files.hpp"
#include "volumes/volume_store.hpp"

namespace sandfs::http {

// The HTTP status of an error code:
//   invalid_request, invalid_name, invalid_config, invalid_path, path_escape     400
//   unauthorized                                                                 401
//   volume_not_found, file_not_found, mount_not_found                            404
//   volume_already_exists, volume_in_use, file_exists, directory_not_empty,
//   not_a_directory, is_a_directory                                              409
//   payload_too_large                                                            413
//   unsupported                                                                  501
//   quota_exceeded                                                               507
//   internal                                                                     500
// not_a_directory / is_a_directory are 409: the request is well formed, what is stored at the
// path conflicts with it (like an existing file). unsupported is 501, not 400: the request is
// valid and a later sandfs may serve it (disk volumes' files, disk mounts). quota_exceeded is
// 507 Insufficient Storage, not 413: the body is within the server's limits, the volume is what
// is full, and a client must not shrink-and-retry the request but free space or raise the quota.
unsigned http_status(volumes::ErrorCode code);

// {"error":{"code":"...","message":"..."}}
std::string error_body(std::string_view code, std::string_view message);
std::string error_body(const volumes::Error& error);

// Request bodies.
volumes::Outcome<volumes::CreateVolume> parse_create_volume(std::string_view body);
volumes::Outcome<volumes::UpdateVolume> parse_update_volume(std::string_view body);
volumes::Outcome<volumes::MountSpec> parse_mount_spec(std::string_view body);
// "k=v" of ?label=k=v.
volumes::Outcome<std::pair<std::string, std::string>> parse_label_selector(std::string_view text);

// Responses.
std::string volume_json(const volumes::VolumeInfo& volume);
std::string volumes_json(const std::vector<volumes::VolumeInfo>& volumes);
std::string file_stat_json(const volumes::FileStat& stat);
std::string file_list_json(std::string_view path, const std::vector<volumes::FileStat>& entries);
std::string mount_json(const volumes::MountInfo& mount);
std::string mounts_json(const std::vector<volumes::MountInfo>& mounts);
std::string mount_stats_json(std::string_view mount_id, const volumes::MountStats& stats);

// RFC 3339 UTC with milliseconds: "2026-12-06T13:22:14.123Z".
std::string rfc3339_utc(int64_t unix_ms);
// "ENOENT", or "E<number>" for an errno without a name.
std::string errno_name(int err);

}  // namespace sandfs::http
