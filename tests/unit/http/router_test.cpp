// Routing, percent-decoding and query strings of the admin API (src/http/router.hpp).
#include "http/router.hpp"

#include <catch2/catch.hpp>

using namespace sandfs::http;
using sandfs::volumes::ErrorCode;

namespace {
RouteMatch route_of(std::string_view path) {
  auto m = match_route(path);
  INFO(path);
  REQUIRE(m.ok());
  return *m;
}
}  // namespace

TEST_CASE("fixed routes match exactly", "[http][router]") {
  CHECK(route_of("/healthz").route == Route::healthz);
  CHECK(route_of("/metrics").route == Route::metrics);
  CHECK(route_of("/v1/volumes").route == Route::volumes);
  CHECK(route_of("/v1/mounts").route == Route::mounts);
  CHECK(route_of("/healthz/").route == Route::none);
  CHECK(route_of("/v1").route == Route::none);
  CHECK(route_of("/v1/").route == Route::none);
  CHECK(route_of("/v2/volumes").route == Route::none);
  CHECK(route_of("/v1/volumesx").route == Route::none);
  CHECK(route_of("/v1/volumes/").route == Route::none);
  CHECK(route_of("").route == Route::none);
  CHECK(route_of("/").route == Route::none);
}

TEST_CASE("volume and mount routes carry the decoded name or id", "[http][router]") {
  RouteMatch v = route_of("/v1/volumes/data-1");
  CHECK(v.route == Route::volume);
  CHECK(v.name == "data-1");
  CHECK(route_of("/v1/volumes/a%2Eb").name == "a.b");
  RouteMatch m = route_of("/v1/mounts/3f2a");
  CHECK(m.route == Route::mount);
  CHECK(m.name == "3f2a");
  RouteMatch s = route_of("/v1/mounts/3f2a/stats");
  CHECK(s.route == Route::mount_stats);
  CHECK(s.name == "3f2a");
  CHECK(route_of("/v1/mounts/3f2a/other").route == Route::none);
  CHECK(route_of("/v1/mounts/3f2a/stats/x").route == Route::none);
  CHECK(route_of("/v1/volumes/v/other").route == Route::none);
  CHECK(route_of("/v1/volumes//files/x").route == Route::none);
}

TEST_CASE("file routes decode the path once and as a whole", "[http][router]") {
  RouteMatch root = route_of("/v1/volumes/v/files");
  CHECK(root.route == Route::volume_files);
  CHECK(root.name == "v");
  CHECK(root.file_path.empty());
  CHECK(route_of("/v1/volumes/v/files/").file_path.empty());
  CHECK(route_of("/v1/volumes/v/files/a/b.txt").file_path == "a/b.txt");
  CHECK(route_of("/v1/volumes/v/files/a%2Fb").file_path == "a/b");
  CHECK(route_of("/v1/volumes/v/files/%2e%2e%2fetc").file_path == "../etc");
  CHECK(route_of("/v1/volumes/v/files/%252e").file_path == "%2e");  // once, not twice
  CHECK(route_of("/v1/volumes/v/files/a%20b+c").file_path == "a b+c");
  CHECK(route_of("/v1/volumes/v/files//abs").file_path == "/abs");
  CHECK(route_of("/v1/volumes/v/filesx").route == Route::none);
}

TEST_CASE("malformed escapes and NUL are refused", "[http][router]") {
  for (std::string_view bad : {"/v1/volumes/v/files/a%00b", "/v1/volumes/v/files/a%",
                               "/v1/volumes/v/files/a%4", "/v1/volumes/v/files/%zz"}) {
    auto m = match_route(bad);
    INFO(bad);
    REQUIRE_FALSE(m.ok());
    CHECK(m.error().code == ErrorCode::invalid_path);
  }
  auto name = match_route("/v1/volumes/a%0");
  REQUIRE_FALSE(name.ok());
  CHECK(name.error().code == ErrorCode::invalid_request);
}

TEST_CASE("percent_decode", "[http][router]") {
  CHECK(percent_decode("abc") == "abc");
  CHECK(percent_decode("%41%62") == "Ab");
  CHECK(percent_decode("a+b") == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("%2B", true) == "+");
  CHECK_FALSE(percent_decode("%"));
  CHECK_FALSE(percent_decode("%1"));
  CHECK_FALSE(percent_decode("%g1"));
  CHECK_FALSE(percent_decode("%00"));
  CHECK(percent_decode("").value().empty());
}

TEST_CASE("methods allowed per route and the Allow header", "[http][router]") {
  CHECK(method_allowed(Route::volumes, Method::post));
  CHECK_FALSE(method_allowed(Route::volumes, Method::delete_));
  CHECK(allowed_methods(Route::volumes) == "GET, POST");
  CHECK(allowed_methods(Route::volume) == "GET, PATCH, DELETE");
  CHECK(allowed_methods(Route::volume_files) == "GET, HEAD, POST, PUT, DELETE");
  CHECK(allowed_methods(Route::mount) == "GET, DELETE");
  CHECK(allowed_methods(Route::mount_stats) == "GET");
  CHECK(allowed_methods(Route::healthz) == "GET, HEAD");
  CHECK_FALSE(method_allowed(Route::none, Method::get));
  CHECK(parse_method("GET") == Method::get);
  CHECK(parse_method("get") == Method::other);
  CHECK(parse_method("OPTIONS") == Method::other);
}

TEST_CASE("query strings", "[http][router]") {
  auto q = Query::parse("stat&recursive=true&label=env%3Dprod&label=team=a+b&&x=");
  REQUIRE(q.ok());
  CHECK(q->has("stat"));
  CHECK(q->get("stat") == "");
  CHECK(q->all("label") == std::vector<std::string>{"env=prod", "team=a b"});
  CHECK(q->flag("recursive", false).value());
  CHECK(q->flag("stat", false).value());
  CHECK_FALSE(q->flag("missing", false).value());
  CHECK(q->flag("missing", true).value());
  CHECK(q->flag("x", false).value());
  auto bad_flag = Query::parse("parents=yes")->flag("parents", false);
  REQUIRE_FALSE(bad_flag.ok());
  CHECK_THAT(bad_flag.error().message, Catch::Contains("parents"));
  CHECK_FALSE(Query::parse("a=%zz").ok());
  CHECK(split_target("/a/b?c=d").first == "/a/b");
  CHECK(split_target("/a/b?c=d").second == "c=d");
  CHECK(split_target("/a").second.empty());
}
