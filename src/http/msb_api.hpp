// MsbApi: the microsandbox SDKs' "cloud" volume API, served under a prefix (default /msb) of the
// admin API's listener, on the same catalog and files as sandfs's own /v1 API. An SDK pointed at
// http://HOST:PORT/msb with sandfs's bearer token stores and reads files in sandfs volumes.
// docs/msb-compat.md lists every route and how it answers.
//
// ## Routes (after the prefix)
//   /v1/volumes                        GET POST          list (a bare array), create
//   /v1/volumes/default                GET               --msb-default-volume, else 404; that
//                                                        volume is kind "host" on every route
//   /v1/volumes/{id}                   GET PATCH DELETE  by the volume's UUID only (no names)
//   /v1/volumes/{id}/files             GET DELETE        list, remove
//   /v1/volumes/{id}/files/content     GET PUT           streamed by the server (server.cpp)
//   /v1/volumes/{id}/files/stat        GET
//   /v1/volumes/{id}/files/exists      GET
//   /v1/volumes/{id}/files/mkdir       POST              {"path"}
//   /v1/volumes/{id}/files/copy        POST              {"from","to"}
//   /v1/volumes/{id}/files/rename      POST              {"from","to"}
//   /v1/sandboxes…, /v1/billing…       any               501 unsupported (sandfs has neither)
// A file path travels in the x-msb-file-path header as base64url without padding; recursion in
// x-msb-file-recursive (true|false). Paths in JSON bodies (mkdir, copy, rename) are plain
// strings. Every path then meets the native API's rules (VolumeFiles): relative, no escape.
//
// ## Errors
// {"error":{"code","message","details"}} with the codes the SDK maps to its error classes:
// volume_not_found 404, volume_file_not_found 404, invalid_volume_path 400, invalid_request 400,
// volume_already_exists 409 (msb_error_status lists them all). Not the cloud's
// name_already_exists: the Node SDK 0.6.18 turns that code into SandboxAlreadyExistsError, while
// any other code on a 409 of POST /v1/volumes becomes its VolumeAlreadyExistsError.
//
// No Beast here: the server hands in the method, the route part of the target, the two headers
// and a small body, and streams file contents itself through open_read / open_write.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "http/api.hpp"
#include "http/router.hpp"
#include "volumes/error.hpp"
#include "volumes/volume.hpp"
#include "volumes/volume_files.hpp"

namespace sandfs::volumes {
class VolumeStore;
}

namespace sandfs::http {

// The part of `path` after `prefix` ("/msb/v1/volumes" → "/v1/volumes"), or nullopt when the
// path is not under it (the prefix must be followed by '/' or end the path). An empty prefix
// (the API turned off) matches nothing.
std::optional<std::string_view> strip_msb_prefix(std::string_view path, std::string_view prefix);

// "--msb-prefix" values: "/msb", "/a/b" (a leading '/', no trailing '/', no '?', '%', '#', no
// empty, "." or ".." segments), or "none" (empty: off). nullopt with `error` set otherwise.
std::optional<std::string> parse_msb_prefix(std::string_view text, std::string& error);

enum class MsbRoute : uint8_t {
  none,
  volumes,
  volume_default,
  volume,
  files,
  files_content,
  files_stat,
  files_exists,
  files_mkdir,
  files_copy,
  files_rename,
  sandboxes,
  billing,
};

struct MsbMatch {
  MsbRoute route = MsbRoute::none;
  std::string id;  // the volume id of volume and files routes, percent-decoded
};

// Matches the path after the prefix (no query). Route none when nothing matches; an error
// (invalid_request) only for a malformed percent-escape or NUL in the id.
volumes::Outcome<MsbMatch> match_msb_route(std::string_view path);
bool msb_method_allowed(MsbRoute route, Method method);
std::string msb_allowed_methods(MsbRoute route);

// x-msb-file-path: base64url (RFC 4648 §5) without padding, canonical (unused bits zero), of a
// UTF-8 path without NUL. Anything else is invalid_path naming what is wrong.
volumes::Outcome<std::string> decode_msb_path(std::string_view text);
std::string encode_msb_path(std::string_view path);

// The status and code an error answers with on the msb routes.
std::pair<unsigned, std::string_view> msb_error_status(volumes::ErrorCode code);
ApiResponse msb_error_response(const volumes::Error& error);
ApiResponse msb_error_response(unsigned status, std::string_view code, std::string_view message);

struct MsbRequest {
  Method method = Method::get;
  MsbMatch match;
  std::optional<std::string> path_header;       // x-msb-file-path, as received
  std::optional<std::string> recursive_header;  // x-msb-file-recursive, as received
  std::string body;
};

inline bool is_msb_download(const MsbRequest& r) {
  return r.match.route == MsbRoute::files_content && r.method == Method::get;
}
inline bool is_msb_upload(const MsbRequest& r) {
  return r.match.route == MsbRoute::files_content && r.method == Method::put;
}

class MsbApi {
 public:
  // `default_volume`: the name GET /v1/volumes/default answers with (empty: a 404).
  MsbApi(volumes::VolumeStore& store, Api& api, std::string default_volume);

  // Every route but the streamed content ones. Blocking; never throws (a failure is a 500).
  ApiResponse handle(const MsbRequest& request);

  // GET …/files/content: the volume by id, the path from the header. Blocking.
  volumes::Outcome<volumes::VolumeFiles::ReadHandle> open_read(const MsbRequest& request);
  // PUT …/files/content (parents are created, as the SDKs' write does). Blocking.
  struct Upload {
    std::unique_ptr<volumes::VolumeFiles::Writer> writer;
    std::string volume;  // its name, for Api::contents_changed after the commit
  };
  volumes::Outcome<Upload> open_write(const MsbRequest& request);
  // The reply to a committed upload.
  static ApiResponse uploaded(uint64_t bytes);

 private:
  ApiResponse dispatch(const MsbRequest& request);
  ApiResponse list_volumes();
  ApiResponse create_volume(const MsbRequest& request);
  ApiResponse default_volume();
  ApiResponse volume_route(const MsbRequest& request);
  ApiResponse files_route(const MsbRequest& request);
  // The volume named by the route's id (measured or not), volume_not_found for a non-UUID.
  volumes::Outcome<volumes::VolumeInfo> volume(const std::string& id, bool measure);
  // Whether `v` is the --msb-default-volume volume (answered as kind "host", not removable here).
  bool is_default(const volumes::VolumeInfo& v) const;
  volumes::Outcome<std::unique_ptr<volumes::VolumeFiles>> files(const std::string& id,
                                                                std::string* name);

  volumes::VolumeStore& store_;
  Api& api_;
  std::string default_volume_;
};

}  // namespace sandfs::http
