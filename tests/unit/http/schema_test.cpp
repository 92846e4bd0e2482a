// JSON bodies to the volume service's requests, results to JSON, and error codes to statuses
// (src/http/schema.hpp).
#include "http/schema.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

using namespace sandfs;
using namespace sandfs::http;
using volumes::ErrorCode;
using json = nlohmann::json;

namespace {
template <class T>
std::string error_of(const volumes::Outcome<T>& o) {
  REQUIRE_FALSE(o.ok());
  CHECK(o.error().code == ErrorCode::invalid_request);
  return o.error().message;
}
}  // namespace

TEST_CASE("each error code has its status", "[http][schema]") {
  CHECK(http_status(ErrorCode::invalid_request) == 400);
  CHECK(http_status(ErrorCode::invalid_name) == 400);
  CHECK(http_status(ErrorCode::invalid_config) == 400);
  CHECK(http_status(ErrorCode::invalid_path) == 400);
  CHECK(http_status(ErrorCode::path_escape) == 400);
  CHECK(http_status(ErrorCode::unauthorized) == 401);
  CHECK(http_status(ErrorCode::volume_not_found) == 404);
  CHECK(http_status(ErrorCode::file_not_found) == 404);
  CHECK(http_status(ErrorCode::mount_not_found) == 404);
  CHECK(http_status(ErrorCode::volume_already_exists) == 409);
  CHECK(http_status(ErrorCode::volume_in_use) == 409);
  CHECK(http_status(ErrorCode::file_exists) == 409);
  CHECK(http_status(ErrorCode::directory_not_empty) == 409);
  CHECK(http_status(ErrorCode::not_a_directory) == 409);
  CHECK(http_status(ErrorCode::is_a_directory) == 409);
  CHECK(http_status(ErrorCode::payload_too_large) == 413);
  CHECK(http_status(ErrorCode::unsupported) == 501);
  CHECK(http_status(ErrorCode::quota_exceeded) == 507);
  CHECK(http_status(ErrorCode::internal) == 500);
}

TEST_CASE("error bodies carry the code name and message", "[http][schema]") {
  const json j = json::parse(error_body(volumes::Error{ErrorCode::path_escape, "a \"b\"\n"}));
  CHECK(j["error"]["code"] == "path_escape");
  CHECK(j["error"]["message"] == "a \"b\"\n");
  // Client bytes in a message that are not UTF-8 never break the body.
  const json k = json::parse(error_body("file_not_found", std::string("no \xff file")));
  CHECK(k["error"]["code"] == "file_not_found");
}

TEST_CASE("create volume bodies", "[http][schema]") {
  auto c =
      parse_create_volume(R"({"name":"v1","kind":"dir","quota_mib":64,"labels":{"env":"prod"}})");
  REQUIRE(c.ok());
  CHECK(c->name == "v1");
  CHECK(c->kind == volumes::VolumeKind::dir);
  CHECK(c->quota_bytes == uint64_t{64} << 20);
  CHECK(c->labels.at("env") == "prod");
  auto d = parse_create_volume(R"({"name":"d","kind":"disk","size_mib":128})");
  REQUIRE(d.ok());
  CHECK(d->kind == volumes::VolumeKind::disk);
  CHECK(d->size_bytes == uint64_t{128} << 20);
  CHECK_FALSE(d->quota_bytes);
  auto b = parse_create_volume(R"({"name":"b","quota_bytes":4096})");
  REQUIRE(b.ok());
  CHECK(b->quota_bytes == 4096u);

  CHECK_THAT(error_of(parse_create_volume("")), Catch::Contains("JSON object"));
  CHECK_THAT(error_of(parse_create_volume("[1]")), Catch::Contains("JSON object"));
  CHECK_THAT(error_of(parse_create_volume("{\"name\":")), Catch::Contains("not valid JSON"));
  CHECK_THAT(error_of(parse_create_volume("{}")), Catch::StartsWith("name: required"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":7})")), Catch::StartsWith("name:"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","kind":"lvm"})")),
             Catch::StartsWith("kind:"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","quota_mib":0})")),
             Catch::StartsWith("quota_mib:"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","quota_mib":-1})")),
             Catch::StartsWith("quota_mib:"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","quota_mib":1.5})")),
             Catch::StartsWith("quota_mib:"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","quota_mib":18446744073709551615})")),
             Catch::Contains("too large"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","quota_mib":1,"quota_bytes":1})")),
             Catch::Contains("not both"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","labels":{"k":1}})")),
             Catch::StartsWith("labels.k:"));
  CHECK_THAT(error_of(parse_create_volume(R"({"name":"a","quota":1})")),
             Catch::StartsWith("quota: unknown field"));
}

TEST_CASE("patch volume bodies: absent, null and a value differ", "[http][schema]") {
  auto none = parse_update_volume("{}");
  REQUIRE(none.ok());
  CHECK_FALSE(none->quota_bytes.has_value());
  CHECK_FALSE(none->labels.has_value());
  auto clear = parse_update_volume(R"({"quota_mib":null,"labels":{}})");
  REQUIRE(clear.ok());
  REQUIRE(clear->quota_bytes.has_value());
  CHECK_FALSE(clear->quota_bytes->has_value());
  REQUIRE(clear->labels.has_value());
  CHECK(clear->labels->empty());
  auto set = parse_update_volume(R"({"quota_mib":2,"labels":{"a":"b"}})");
  REQUIRE(set.ok());
  CHECK(set->quota_bytes.value() == uint64_t{2} << 20);
  CHECK(set->labels->at("a") == "b");
  CHECK_THAT(error_of(parse_update_volume(R"({"name":"x"})")), Catch::StartsWith("name:"));
  CHECK_THAT(error_of(parse_update_volume(R"({"quota_mib":"big"})")),
             Catch::StartsWith("quota_mib:"));
}

TEST_CASE("mount specs: named volume over fuse", "[http][schema]") {
  auto s = parse_mount_spec(R"({
    "sandbox_id": "sb1", "guest_path": "/data",
    "source": {"type": "named", "name": "vol", "mode": "ensure-exists", "kind": "dir",
               "quota_mib": 8, "labels": {"a": "b"}},
    "readonly": true, "noexec": true, "nosuid": true, "nodev": true,
    "stat_virtualization": "relaxed", "host_permissions": "mirror", "cache": "never",
    "transport": {"type": "fuse", "mountpoint": "/mnt/x"}})");
  REQUIRE(s.ok());
  CHECK(s->sandbox_id == "sb1");
  CHECK(s->guest_path == "/data");
  CHECK(s->source == volumes::SourceKind::named);
  CHECK(s->volume == "vol");
  CHECK(s->mode == volumes::NamedMode::ensure_exists);
  CHECK(s->create_quota_bytes == uint64_t{8} << 20);
  CHECK(s->create_labels.at("a") == "b");
  CHECK(s->readonly);
  CHECK(s->noexec);
  CHECK(s->nosuid);
  CHECK(s->nodev);
  CHECK(s->stat_virtualization == passthrough::StatVirtualization::relaxed);
  CHECK(s->host_permissions == passthrough::HostPermissions::mirror);
  CHECK(s->cache == CachePolicy::never);
  CHECK(s->transport == volumes::TransportKind::fuse);
  CHECK(s->mountpoint == "/mnt/x");
}

TEST_CASE("mount specs: defaults, bind, tmpfs and vhost-user", "[http][schema]") {
  auto d = parse_mount_spec(R"({"sandbox_id":"sb","source":{"type":"named","name":"v"}})");
  REQUIRE(d.ok());
  CHECK(d->mode == volumes::NamedMode::existing);
  CHECK(d->transport == volumes::TransportKind::vhost_user);
  CHECK(d->queues == 1);
  CHECK_FALSE(d->readonly);
  CHECK(d->stat_virtualization == passthrough::StatVirtualization::strict);
  auto b = parse_mount_spec(
      R"({"sandbox_id":"sb","source":{"type":"bind","path":"/srv","quota_mib":1},
          "transport":{"type":"vhost-user","socket_path":"/run/x.sock","queues":4}})");
  REQUIRE(b.ok());
  CHECK(b->source == volumes::SourceKind::bind);
  CHECK(b->bind_path == "/srv");
  CHECK(b->quota_bytes == uint64_t{1} << 20);
  CHECK(b->socket_path == "/run/x.sock");
  CHECK(b->queues == 4);
  auto t = parse_mount_spec(R"({"sandbox_id":"sb","source":{"type":"tmpfs","size_mib":16}})");
  REQUIRE(t.ok());
  CHECK(t->source == volumes::SourceKind::tmpfs);
  CHECK(t->size_bytes == uint64_t{16} << 20);
  auto k = parse_mount_spec(R"({"sandbox_id":"sb","source":{"type":"disk","path":"/x.raw"}})");
  REQUIRE(k.ok());
  CHECK(k->source == volumes::SourceKind::disk);
}

TEST_CASE("mount spec errors name the field", "[http][schema]") {
  CHECK_THAT(error_of(parse_mount_spec(R"({"source":{"type":"tmpfs"}})")),
             Catch::StartsWith("sandbox_id:"));
  CHECK_THAT(error_of(parse_mount_spec(R"({"sandbox_id":"s"})")), Catch::StartsWith("source:"));
  CHECK_THAT(error_of(parse_mount_spec(R"({"sandbox_id":"s","source":{}})")),
             Catch::StartsWith("source.type:"));
  CHECK_THAT(error_of(parse_mount_spec(R"({"sandbox_id":"s","source":{"type":"nfs"}})")),
             Catch::StartsWith("source.type:"));
  CHECK_THAT(error_of(parse_mount_spec(R"({"sandbox_id":"s","source":{"type":"bind"}})")),
             Catch::StartsWith("source.path:"));
  CHECK_THAT(error_of(parse_mount_spec(R"({"sandbox_id":"s","source":{"type":"named"}})")),
             Catch::StartsWith("source.name:"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"named","name":"v","mode":"maybe"}})")),
             Catch::StartsWith("source.mode:"));
  CHECK_THAT(
      error_of(parse_mount_spec(R"({"sandbox_id":"s","source":{"type":"tmpfs","path":"/x"}})")),
      Catch::StartsWith("source.path: unknown field"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"tmpfs"},"readonly":"yes"})")),
             Catch::StartsWith("readonly:"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"tmpfs"},"cache":"sometimes"})")),
             Catch::StartsWith("cache:"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"tmpfs"},"stat_virtualization":"x"})")),
             Catch::StartsWith("stat_virtualization:"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"tmpfs"},"transport":{"type":"fuse"}})")),
             Catch::StartsWith("transport.mountpoint:"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"tmpfs"},"transport":{"queues":0}})")),
             Catch::StartsWith("transport.queues:"));
  CHECK_THAT(error_of(parse_mount_spec(
                 R"({"sandbox_id":"s","source":{"type":"tmpfs"},"transport":{"type":"9p"}})")),
             Catch::StartsWith("transport.type:"));
}

TEST_CASE("volume JSON has every field", "[http][schema]") {
  volumes::VolumeInfo v;
  v.id = "id-1";
  v.name = "v";
  v.quota_bytes = 1024;
  v.labels = {{"a", "b"}};
  v.created_at_ms = 1'700'000'000'123;
  v.updated_at_ms = 0;
  v.used_bytes = 7;
  v.path = "/data/volumes/v";
  const json j = json::parse(volume_json(v));
  CHECK(j["id"] == "id-1");
  CHECK(j["kind"] == "dir");
  CHECK(j["quota_bytes"] == 1024);
  CHECK(j["capacity_bytes"].is_null());
  CHECK(j["disk_format"].is_null());
  CHECK(j["disk_fstype"].is_null());
  CHECK(j["labels"]["a"] == "b");
  CHECK(j["used_bytes"] == 7);
  CHECK(j["created_at"] == "2023-11-14T22:13:20.123Z");
  CHECK(j["updated_at"] == "1970-01-01T00:00:00.000Z");
  CHECK(j["path"] == "/data/volumes/v");
  CHECK(json::parse(volumes_json({v, v}))["volumes"].size() == 2);
}

TEST_CASE("mount stats JSON names opcodes and errnos", "[http][schema]") {
  volumes::MountStats s;
  s.requests.ops.push_back({1, 10, 2, 5000});  // LOOKUP
  s.requests.errors_by_errno = {{2, 2}};
  s.requests.bytes_read = 4096;
  s.requests.p99_us = 64;
  s.quota_limit_bytes = 100;
  s.quota_used_bytes = 50;
  const json j = json::parse(mount_stats_json("m1", s));
  CHECK(j["ops"]["LOOKUP"]["count"] == 10);
  CHECK(j["ops"]["LOOKUP"]["errors"] == 2);
  CHECK(j["errors_by_errno"]["ENOENT"] == 2);
  CHECK(j["bytes_read"] == 4096);
  CHECK(j["latency_us"]["p99"] == 64);
  CHECK(j["quota"]["limit_bytes"] == 100);
  CHECK(j["quota"]["used_bytes"] == 50);
  CHECK(errno_name(2) == "ENOENT");
  CHECK(errno_name(100000) == "E100000");
}

TEST_CASE("mount stats JSON carries the copy-up counters", "[http][schema]") {
  volumes::MountStats s;
  s.requests.copy_ups = 3;
  s.requests.copy_up_failures = 1;
  s.requests.copy_up_bytes = 3145728;
  s.requests.copy_up_total_ns = 9000;
  s.requests.copy_up_us_log2[2] = 3;
  s.requests.promotions = 2;
  const json j = json::parse(mount_stats_json("m1", s));
  CHECK(j["copy_ups"] == 3);
  CHECK(j["copy_up"]["failed"] == 1);
  CHECK(j["copy_up"]["bytes"] == 3145728);
  CHECK(j["copy_up"]["total_ns"] == 9000);
  CHECK(j["copy_up"]["promotions"] == 2);
  CHECK(j["copy_up"]["promotions_failed"] == 0);
  REQUIRE(j["copy_up"]["duration_us_log2"].size() == Stats::latency_buckets);
  CHECK(j["copy_up"]["duration_us_log2"][2] == 3);
}

TEST_CASE("label selectors", "[http][schema]") {
  auto kv = parse_label_selector("env=prod=1");
  REQUIRE(kv.ok());
  CHECK(kv->first == "env");
  CHECK(kv->second == "prod=1");
  CHECK(parse_label_selector("env=").ok());
  CHECK_FALSE(parse_label_selector("env").ok());
  CHECK_FALSE(parse_label_selector("=x").ok());
}
