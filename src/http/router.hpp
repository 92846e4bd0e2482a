// Request routing for the admin API: which resource a request target names, which methods that
// resource serves, and the query string. No Beast and no JSON here, so the rules are unit-tested
// without a socket.
//
// ## Targets
//   /healthz                            GET HEAD      liveness (no token)
//   /metrics                            GET           Prometheus text
//   /v1/volumes                         GET POST
//   /v1/volumes/{name}                  GET PATCH DELETE
//   /v1/volumes/{name}/files[/{path}]   GET HEAD PUT DELETE POST
//   /v1/mounts                          GET POST
//   /v1/mounts/{id}                     GET DELETE
//   /v1/mounts/{id}/stats               GET
//
// ## Percent-decoding
// Each part is decoded exactly once. The file path after ".../files/" is decoded as a whole, so
// %2F becomes '/' and then meets the same normalisation (volumes::normalize_volume_path) as a
// literal '/'; %2e%2e is "..", which that normalisation refuses as an escape. A malformed escape
// or a decoded NUL is invalid_path (file paths) or invalid_request (names, ids, queries).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "volumes/error.hpp"

namespace sandfs::http {

using volumes::Error;
using volumes::ErrorCode;
using volumes::Outcome;

enum class Method : uint8_t { get, head, post, put, patch, delete_, other };
Method parse_method(std::string_view text);  // exact, upper-case as on the wire
std::string_view to_string(Method method);
// An Allow header: the known methods `allowed` accepts, in one fixed order ("GET, POST").
std::string allow_header(const std::function<bool(Method)>& allowed);

enum class Route : uint8_t {
  none,
  healthz,
  metrics,
  volumes,
  volume,
  volume_files,
  mounts,
  mount,
  mount_stats,
};

struct RouteMatch {
  Route route = Route::none;
  std::string name;       // volume: its name; mount, mount_stats: its id (decoded)
  std::string file_path;  // volume_files: the decoded path after "/files/" ("" for the root)
};

// Matches the path part of a request target (no query). Route::none when nothing matches;
// an error only for a malformed escape or a NUL inside a part that did match.
Outcome<RouteMatch> match_route(std::string_view path);

bool method_allowed(Route route, Method method);
// The Allow header of a route ("GET, POST").
std::string allowed_methods(Route route);

// Decodes %XX escapes once. `plus_is_space` for query strings (application/x-www-form-urlencoded).
// nullopt for a malformed escape ('%' not followed by two hex digits) or a decoded NUL.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space = false);

class Query {
 public:
  // Parses "a=1&b&c=x%20y": pairs split on '&', key and value on the first '='; both decoded.
  static Outcome<Query> parse(std::string_view text);

  bool has(std::string_view key) const;
  std::optional<std::string> get(std::string_view key) const;  // the last value given
  std::vector<std::string> all(std::string_view key) const;
  // "true"/"1"/"" (the key alone) are true, "false"/"0" false, anything else an invalid_request
  // naming the parameter; `fallback` when absent.
  Outcome<bool> flag(std::string_view key, bool fallback) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// Splits a request target into its path and query ("/a?b" → "/a", "b").
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

}  // namespace sandfs::http
