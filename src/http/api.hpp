// Api: the admin API's routes over the volume service, one blocking call per request.
//
// The server (server.cpp) reads a request, checks the token and the method, and runs
// Api::handle on its blocking pool, never on the event loop (the store, the file operations and
// the mount manager all block). File contents are not handled here: the server streams them
// itself (GET and PUT of .../files/{path}) through files().
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "http/router.hpp"
#include "volumes/error.hpp"
#include "volumes/volume_files.hpp"

namespace sandfs::volumes {
class VolumeStore;
class MountManager;
}  // namespace sandfs::volumes

namespace sandfs::http {

struct ApiRequest {
  Method method = Method::get;
  RouteMatch match;
  Query query;
  std::string body;
};

struct ApiResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // the Allow header of a 405
};

ApiResponse error_response(const volumes::Error& error);
ApiResponse error_response(unsigned status, std::string_view code, std::string_view message);

// Whether a request on .../files/{path} moves file contents (streamed by the server): GET
// without ?stat or ?list, and PUT.
bool is_file_download(const ApiRequest& request);
bool is_file_upload(const ApiRequest& request);

class Api {
 public:
  Api(volumes::VolumeStore& store, volumes::MountManager& mounts);

  // Every route but the two streamed ones. Blocking; never throws (a failure is a 500).
  ApiResponse handle(const ApiRequest& request);

  // The file operations of a dir volume (volume_not_found, unsupported for disk volumes).
  volumes::Outcome<std::unique_ptr<volumes::VolumeFiles>> files(std::string_view volume);
  // After a host-side change to a volume's files: its used_bytes is measured afresh.
  void contents_changed(std::string_view volume);

  // /metrics, Prometheus text format 0.0.4.
  std::string metrics();

  // Counted by the server, shown in /metrics.
  void count_request(unsigned status);

 private:
  ApiResponse dispatch(const ApiRequest& request);
  ApiResponse volumes_route(const ApiRequest& request);
  ApiResponse volume_route(const ApiRequest& request);
  ApiResponse files_route(const ApiRequest& request);
  ApiResponse mounts_route(const ApiRequest& request);
  ApiResponse mount_route(const ApiRequest& request);
  ApiResponse mount_stats_route(const ApiRequest& request);

  volumes::VolumeStore& store_;
  volumes::MountManager& mounts_;
  // Responses by status class (1xx..5xx), for /metrics.
  std::atomic<uint64_t> responses_[6] = {};
};

}  // namespace sandfs::http
