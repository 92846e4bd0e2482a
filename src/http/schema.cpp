#include "http/schema.hpp"

#include <cstring>
#include <ctime>
#include <initializer_list>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "backends/passthrough/policy.hpp"
#include "core/stats.hpp"

namespace sandfs::http {

using json = nlohmann::json;
using volumes::Error;
using volumes::ErrorCode;
using volumes::Outcome;

namespace {

constexpr uint64_t mib = uint64_t{1} << 20;

Error invalid(std::string_view field, std::string_view what) {
  return Error{ErrorCode::invalid_request, std::string(field) + ": " + std::string(what)};
}

std::string field_name(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  return std::string(prefix) + "." + std::string(key);
}

Outcome<json> parse_object(std::string_view body) {
  if (body.empty())
    return Error{ErrorCode::invalid_request, "the request body must be a JSON object"};
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    return Error{ErrorCode::invalid_request,
                 "the request body is not valid JSON (at byte " + std::to_string(e.byte) + ")"};
  }
  if (!j.is_object()) {
    return Error{ErrorCode::invalid_request, "the request body must be a JSON object"};
  }
  return j;
}

// An unknown field is an error rather than ignored: a misspelt option must not silently fall
// back to its default.
std::optional<Error> only_fields(const json& object, std::initializer_list<std::string_view> known,
                                 std::string_view prefix) {
  for (const auto& item : object.items()) {
    bool ok = false;
    for (std::string_view k : known)
      ok = ok || item.key() == k;
    if (!ok) return invalid(field_name(prefix, item.key()), "unknown field");
  }
  return std::nullopt;
}

const json* find(const json& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Outcome<std::optional<std::string>> opt_string(const json& object, std::string_view key,
                                               std::string_view prefix) {
  const json* v = find(object, key);
  if (v == nullptr || v->is_null()) return std::optional<std::string>{};
  if (!v->is_string()) return invalid(field_name(prefix, key), "must be a string");
  return std::optional<std::string>(v->get<std::string>());
}

Outcome<std::optional<bool>> opt_bool(const json& object, std::string_view key,
                                      std::string_view prefix) {
  const json* v = find(object, key);
  if (v == nullptr || v->is_null()) return std::optional<bool>{};
  if (!v->is_boolean()) return invalid(field_name(prefix, key), "must be true or false");
  return std::optional<bool>(v->get<bool>());
}

// A positive integer, multiplied by `unit` without overflow.
Outcome<uint64_t> positive(const json& v, std::string_view field, uint64_t unit) {
  if (!v.is_number_integer() ||
      (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() <= 0)) {
    return invalid(field, "must be a positive integer");
  }
  const uint64_t n = v.get<uint64_t>();
  if (n == 0) return invalid(field, "must be a positive integer");
  if (n > std::numeric_limits<uint64_t>::max() / unit) return invalid(field, "is too large");
  return n * unit;
}

// `<base>_mib` or `<base>_bytes` (not both): absent → nullopt.
Outcome<std::optional<uint64_t>> size_field(const json& object, std::string_view base,
                                            std::string_view prefix) {
  const std::string mib_key = std::string(base) + "_mib";
  const std::string bytes_key = std::string(base) + "_bytes";
  const json* in_mib = find(object, mib_key);
  const json* in_bytes = find(object, bytes_key);
  if (in_mib != nullptr && in_mib->is_null()) in_mib = nullptr;
  if (in_bytes != nullptr && in_bytes->is_null()) in_bytes = nullptr;
  if (in_mib != nullptr && in_bytes != nullptr) {
    return invalid(field_name(prefix, mib_key),
                   "give " + mib_key + " or " + bytes_key + ", not both");
  }
  if (in_mib != nullptr) {
    auto n = positive(*in_mib, field_name(prefix, mib_key), mib);
    if (!n) return n.error();
    return std::optional<uint64_t>(*n);
  }
  if (in_bytes != nullptr) {
    auto n = positive(*in_bytes, field_name(prefix, bytes_key), 1);
    if (!n) return n.error();
    return std::optional<uint64_t>(*n);
  }
  return std::optional<uint64_t>{};
}

Outcome<volumes::Labels> labels_of(const json& v, std::string_view field) {
  if (!v.is_object()) return invalid(field, "must be an object of strings");
  volumes::Labels labels;
  for (const auto& item : v.items()) {
    if (!item.value().is_string()) {
      return invalid(std::string(field) + "." + item.key(), "must be a string");
    }
    if (item.key().empty()) return invalid(field, "a label key must not be empty");
    labels[item.key()] = item.value().get<std::string>();
  }
  return labels;
}

Outcome<volumes::VolumeKind> kind_of(const json& object, std::string_view prefix) {
  auto kind = opt_string(object, "kind", prefix);
  if (!kind) return kind.error();
  if (!*kind || **kind == "dir") return volumes::VolumeKind::dir;
  if (**kind == "disk") return volumes::VolumeKind::disk;
  return invalid(field_name(prefix, "kind"), "must be \"dir\" or \"disk\", not \"" + **kind + "\"");
}

json optional_number(const std::optional<uint64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

json optional_string(const std::string& s) {
  return s.empty() ? json(nullptr) : json(s);
}

json labels_json(const volumes::Labels& labels) {
  json out = json::object();
  for (const auto& [k, v] : labels)
    out[k] = v;
  return out;
}

json volume_object(const volumes::VolumeInfo& v) {
  return json{
      {"id", v.id},
      {"name", v.name},
      {"kind", std::string(volumes::to_string(v.kind))},
      {"quota_bytes", optional_number(v.quota_bytes)},
      {"capacity_bytes", optional_number(v.capacity_bytes)},
      {"disk_format", optional_string(v.disk_format)},
      {"disk_fstype", optional_string(v.disk_fstype)},
      {"labels", labels_json(v.labels)},
      {"used_bytes", v.used_bytes},
      {"created_at", rfc3339_utc(v.created_at_ms)},
      {"updated_at", rfc3339_utc(v.updated_at_ms)},
      {"path", v.path},
  };
}

json file_object(const volumes::FileStat& s) {
  return json{
      {"path", s.path},
      {"kind", std::string(volumes::to_string(s.kind))},
      {"size", s.size},
      {"mode", s.mode},
      {"uid", s.uid},
      {"gid", s.gid},
      {"accessed_at", rfc3339_utc(s.atime_ms)},
      {"modified_at", rfc3339_utc(s.mtime_ms)},
      {"changed_at", rfc3339_utc(s.ctime_ms)},
  };
}

std::string state_of(const volumes::MountInfo& m) {
  if (m.spec.transport == volumes::TransportKind::fuse) return m.connected ? "mounted" : "stopped";
  return m.connected ? "connected" : "listening";
}

json mount_object(const volumes::MountInfo& m) {
  const volumes::MountSpec& s = m.spec;
  json source = {{"type", std::string(volumes::to_string(s.source))}};
  switch (s.source) {
    case volumes::SourceKind::bind:
      source["path"] = s.bind_path;
      source["quota_bytes"] = optional_number(s.quota_bytes);
      break;
    case volumes::SourceKind::named:
      source["name"] = s.volume;
      source["mode"] = std::string(volumes::to_string(s.mode));
      source["kind"] = std::string(volumes::to_string(s.create_kind));
      source["quota_bytes"] = optional_number(s.create_quota_bytes);
      source["labels"] = labels_json(s.create_labels);
      break;
    case volumes::SourceKind::tmpfs:
      source["size_bytes"] = optional_number(s.size_bytes);
      break;
    case volumes::SourceKind::disk:
      break;
  }
  json transport = {{"type", std::string(volumes::to_string(s.transport))}};
  json out = {
      {"id", m.id},
      {"sandbox_id", s.sandbox_id},
      {"guest_path", s.guest_path},
      {"source", std::move(source)},
      {"readonly", s.readonly},
      {"noexec", s.noexec},
      {"nosuid", s.nosuid},
      {"nodev", s.nodev},
      {"stat_virtualization", std::string(passthrough::to_string(s.stat_virtualization))},
      {"host_permissions", std::string(passthrough::to_string(s.host_permissions))},
      {"cache", std::string(to_string(s.cache))},
      {"volume_id", optional_string(m.volume_id)},
      {"created_at", rfc3339_utc(m.created_at_ms)},
      {"state", state_of(m)},
      {"connections", m.connections},
  };
  if (s.transport == volumes::TransportKind::vhost_user) {
    transport["socket_path"] = s.socket_path;
    transport["queues"] = s.queues;
    out["socket_path"] = s.socket_path;
  } else {
    transport["mountpoint"] = s.mountpoint;
    out["mountpoint"] = s.mountpoint;
  }
  out["transport"] = std::move(transport);
  return out;
}

// ---- mount spec parts ----

std::optional<Error> parse_source(const json& src, volumes::MountSpec& spec) {
  constexpr std::string_view p = "source";
  if (!src.is_object()) return invalid(p, "must be an object with a \"type\"");
  auto type = opt_string(src, "type", p);
  if (!type) return type.error();
  if (!*type) return invalid("source.type", "required (bind, named, tmpfs or disk)");
  const std::string& t = **type;
  if (t == "bind") {
    spec.source = volumes::SourceKind::bind;
    if (auto e = only_fields(src, {"type", "path", "quota_mib", "quota_bytes"}, p)) return e;
    auto path = opt_string(src, "path", p);
    if (!path) return path.error();
    if (!*path || (*path)->empty()) return invalid("source.path", "required for a bind mount");
    spec.bind_path = **path;
    auto quota = size_field(src, "quota", p);
    if (!quota) return quota.error();
    spec.quota_bytes = *quota;
    return std::nullopt;
  }
  if (t == "named") {
    spec.source = volumes::SourceKind::named;
    if (auto e = only_fields(
            src, {"type", "name", "mode", "kind", "quota_mib", "quota_bytes", "size_mib", "labels"},
            p)) {
      return e;
    }
    auto name = opt_string(src, "name", p);
    if (!name) return name.error();
    if (!*name || (*name)->empty()) return invalid("source.name", "required for a named mount");
    spec.volume = **name;
    auto mode = opt_string(src, "mode", p);
    if (!mode) return mode.error();
    if (!*mode || **mode == "existing") {
      spec.mode = volumes::NamedMode::existing;
    } else if (**mode == "create") {
      spec.mode = volumes::NamedMode::create;
    } else if (**mode == "ensure-exists" || **mode == "ensure_exists") {
      spec.mode = volumes::NamedMode::ensure_exists;
    } else {
      return invalid("source.mode",
                     "must be existing, create or ensure-exists, not \"" + **mode + "\"");
    }
    auto kind = kind_of(src, p);
    if (!kind) return kind.error();
    spec.create_kind = *kind;
    auto quota = size_field(src, "quota", p);
    if (!quota) return quota.error();
    spec.create_quota_bytes = *quota;
    auto size = size_field(src, "size", p);
    if (!size) return size.error();
    spec.size_bytes = *size;
    if (const json* l = find(src, "labels"); l != nullptr && !l->is_null()) {
      auto labels = labels_of(*l, "source.labels");
      if (!labels) return labels.error();
      spec.create_labels = std::move(*labels);
    }
    return std::nullopt;
  }
  if (t == "tmpfs") {
    spec.source = volumes::SourceKind::tmpfs;
    if (auto e = only_fields(src, {"type", "size_mib", "size_bytes"}, p)) return e;
    auto size = size_field(src, "size", p);
    if (!size) return size.error();
    spec.size_bytes = *size;
    return std::nullopt;
  }
  if (t == "disk") {
    spec.source = volumes::SourceKind::disk;
    if (auto e = only_fields(src, {"type", "path"}, p)) return e;
    // Disk images are not served yet (the mount manager answers unsupported); the path is
    // checked for its type only.
    auto path = opt_string(src, "path", p);
    if (!path) return path.error();
    return std::nullopt;
  }
  return invalid("source.type", "must be bind, named, tmpfs or disk, not \"" + t + "\"");
}

std::optional<Error> parse_transport(const json& tr, volumes::MountSpec& spec) {
  constexpr std::string_view p = "transport";
  if (!tr.is_object()) return invalid(p, "must be an object with a \"type\"");
  auto type = opt_string(tr, "type", p);
  if (!type) return type.error();
  if (!*type || **type == "vhost-user" || **type == "vhost_user") {
    spec.transport = volumes::TransportKind::vhost_user;
    if (auto e = only_fields(tr, {"type", "socket_path", "queues"}, p)) return e;
    auto socket = opt_string(tr, "socket_path", p);
    if (!socket) return socket.error();
    if (*socket) {
      if ((*socket)->size() > 107) {
        return invalid("transport.socket_path", "a Unix socket path has at most 107 bytes");
      }
      spec.socket_path = **socket;
    }
    if (const json* q = find(tr, "queues"); q != nullptr && !q->is_null()) {
      if (!q->is_number_unsigned() || q->get<uint64_t>() < 1 || q->get<uint64_t>() > 64) {
        return invalid("transport.queues", "must be an integer from 1 to 64");
      }
      spec.queues = static_cast<unsigned>(q->get<uint64_t>());
    }
    return std::nullopt;
  }
  if (**type == "fuse") {
    spec.transport = volumes::TransportKind::fuse;
    if (auto e = only_fields(tr, {"type", "mountpoint"}, p)) return e;
    auto mp = opt_string(tr, "mountpoint", p);
    if (!mp) return mp.error();
    if (!*mp || (*mp)->empty()) {
      return invalid("transport.mountpoint", "required for the fuse transport");
    }
    spec.mountpoint = **mp;
    return std::nullopt;
  }
  return invalid("transport.type", "must be vhost-user or fuse, not \"" + **type + "\"");
}

}  // namespace

unsigned http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_request:
    case ErrorCode::invalid_name:
    case ErrorCode::invalid_config:
    case ErrorCode::invalid_path:
    case ErrorCode::path_escape:
      return 400;
    case ErrorCode::unauthorized:
      return 401;
    case ErrorCode::volume_not_found:
    case ErrorCode::file_not_found:
    case ErrorCode::mount_not_found:
      return 404;
    case ErrorCode::volume_already_exists:
    case ErrorCode::volume_in_use:
    case ErrorCode::file_exists:
    case ErrorCode::directory_not_empty:
    case ErrorCode::not_a_directory:
    case ErrorCode::is_a_directory:
      return 409;
    case ErrorCode::payload_too_large:
      return 413;
    case ErrorCode::unsupported:
      return 501;
    case ErrorCode::quota_exceeded:
      return 507;
    case ErrorCode::internal:
      break;
  }
  return 500;
}

std::string error_body(std::string_view code, std::string_view message) {
  json j = {{"error", {{"code", code}, {"message", message}}}};
  // A message may carry bytes from a client (a path); never fail on invalid UTF-8.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string error_body(const Error& error) {
  return error_body(volumes::code_name(error.code), error.message);
}

Outcome<volumes::CreateVolume> parse_create_volume(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return j.error();
  if (auto e =
          only_fields(*j, {"name", "kind", "quota_mib", "quota_bytes", "size_mib", "labels"}, "")) {
    return *e;
  }
  volumes::CreateVolume req;
  auto name = opt_string(*j, "name", "");
  if (!name) return name.error();
  if (!*name) return invalid("name", "required");
  req.name = **name;
  auto kind = kind_of(*j, "");
  if (!kind) return kind.error();
  req.kind = *kind;
  auto quota = size_field(*j, "quota", "");
  if (!quota) return quota.error();
  req.quota_bytes = *quota;
  if (const json* s = find(*j, "size_mib"); s != nullptr && !s->is_null()) {
    auto size = positive(*s, "size_mib", mib);
    if (!size) return size.error();
    req.size_bytes = *size;
  }
  if (const json* l = find(*j, "labels"); l != nullptr && !l->is_null()) {
    auto labels = labels_of(*l, "labels");
    if (!labels) return labels.error();
    req.labels = std::move(*labels);
  }
  return req;
}

Outcome<volumes::UpdateVolume> parse_update_volume(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return j.error();
  if (auto e = only_fields(*j, {"quota_mib", "quota_bytes", "labels"}, "")) return *e;
  volumes::UpdateVolume req;
  const json* in_mib = find(*j, "quota_mib");
  const json* in_bytes = find(*j, "quota_bytes");
  if (in_mib != nullptr && in_bytes != nullptr) {
    return invalid("quota_mib", "give quota_mib or quota_bytes, not both");
  }
  if (const json* q = in_mib != nullptr ? in_mib : in_bytes; q != nullptr) {
    // Present and null: remove the quota.
    if (q->is_null()) {
      req.quota_bytes = std::optional<uint64_t>{};
    } else {
      auto n = positive(*q, in_mib != nullptr ? "quota_mib" : "quota_bytes",
                        in_mib != nullptr ? mib : 1);
      if (!n) return n.error();
      req.quota_bytes = std::optional<uint64_t>(*n);
    }
  }
  if (const json* l = find(*j, "labels"); l != nullptr) {
    if (l->is_null()) {
      req.labels = volumes::Labels{};
    } else {
      auto labels = labels_of(*l, "labels");
      if (!labels) return labels.error();
      req.labels = std::move(*labels);
    }
  }
  return req;
}

Outcome<volumes::MountSpec> parse_mount_spec(std::string_view body) {
  auto j = parse_object(body);
  if (!j) return j.error();
  if (auto e =
          only_fields(*j,
                      {"sandbox_id", "guest_path", "source", "readonly", "noexec", "nosuid",
                       "nodev", "stat_virtualization", "host_permissions", "cache", "transport"},
                      "")) {
    return *e;
  }
  volumes::MountSpec spec;
  auto sandbox = opt_string(*j, "sandbox_id", "");
  if (!sandbox) return sandbox.error();
  if (!*sandbox || (*sandbox)->empty()) return invalid("sandbox_id", "required");
  spec.sandbox_id = **sandbox;
  auto guest = opt_string(*j, "guest_path", "");
  if (!guest) return guest.error();
  if (*guest) spec.guest_path = **guest;

  const json* src = find(*j, "source");
  if (src == nullptr || src->is_null()) return invalid("source", "required");
  if (auto e = parse_source(*src, spec)) return *e;

  struct BoolField {
    std::string_view key;
    bool* out;
  };
  for (const BoolField f :
       {BoolField{"readonly", &spec.readonly}, BoolField{"noexec", &spec.noexec},
        BoolField{"nosuid", &spec.nosuid}, BoolField{"nodev", &spec.nodev}}) {
    auto v = opt_bool(*j, f.key, "");
    if (!v) return v.error();
    if (*v) *f.out = **v;
  }
  auto virt = opt_string(*j, "stat_virtualization", "");
  if (!virt) return virt.error();
  if (*virt && !passthrough::parse_stat_virtualization(**virt, spec.stat_virtualization)) {
    return invalid("stat_virtualization", "must be strict, relaxed or off, not \"" + **virt + "\"");
  }
  auto perms = opt_string(*j, "host_permissions", "");
  if (!perms) return perms.error();
  if (*perms && !passthrough::parse_host_permissions(**perms, spec.host_permissions)) {
    return invalid("host_permissions", "must be private or mirror, not \"" + **perms + "\"");
  }
  auto cache = opt_string(*j, "cache", "");
  if (!cache) return cache.error();
  if (*cache && !parse_cache_policy(**cache, spec.cache)) {
    return invalid("cache", "must be never, auto or always, not \"" + **cache + "\"");
  }
  if (const json* tr = find(*j, "transport"); tr != nullptr && !tr->is_null()) {
    if (auto e = parse_transport(*tr, spec)) return *e;
  }
  return spec;
}

Outcome<std::pair<std::string, std::string>> parse_label_selector(std::string_view text) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Error{ErrorCode::invalid_request,
                 "query parameter 'label' must be KEY=VALUE, not '" + std::string(text) + "'"};
  }
  return std::pair<std::string, std::string>(text.substr(0, eq), text.substr(eq + 1));
}

std::string volume_json(const volumes::VolumeInfo& volume) {
  return volume_object(volume).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string volumes_json(const std::vector<volumes::VolumeInfo>& list) {
  json arr = json::array();
  for (const auto& v : list)
    arr.push_back(volume_object(v));
  return json{{"volumes", std::move(arr)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string file_stat_json(const volumes::FileStat& stat) {
  return file_object(stat).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string file_list_json(std::string_view path, const std::vector<volumes::FileStat>& entries) {
  json arr = json::array();
  for (const auto& e : entries)
    arr.push_back(file_object(e));
  return json{{"path", path}, {"entries", std::move(arr)}}.dump(-1, ' ', false,
                                                                json::error_handler_t::replace);
}

std::string mount_json(const volumes::MountInfo& mount) {
  return mount_object(mount).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string mounts_json(const std::vector<volumes::MountInfo>& mounts) {
  json arr = json::array();
  for (const auto& m : mounts)
    arr.push_back(mount_object(m));
  return json{{"mounts", std::move(arr)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string mount_stats_json(std::string_view mount_id, const volumes::MountStats& stats) {
  const Stats::Snapshot& r = stats.requests;
  json ops = json::object();
  uint64_t total = 0, errors = 0;
  for (const auto& op : r.ops) {
    ops[opcode_name(op.opcode)] = {
        {"count", op.count}, {"errors", op.errors}, {"total_ns", op.total_ns}};
    total += op.count;
    errors += op.errors;
  }
  json by_errno = json::object();
  for (const auto& [err, count] : r.errors_by_errno)
    by_errno[errno_name(err)] = count;
  json out = {
      {"mount_id", mount_id},
      {"requests", total},
      {"errors", errors},
      {"ops", std::move(ops)},
      {"errors_by_errno", std::move(by_errno)},
      {"bytes_read", r.bytes_read},
      {"bytes_written", r.bytes_written},
      {"latency_us", {{"p50", r.p50_us}, {"p90", r.p90_us}, {"p99", r.p99_us}}},
      {"in_flight", r.in_flight},
      {"malformed", r.malformed},
      {"interrupts", r.interrupts},
      {"connections", stats.connections},
      {"bad_chains", stats.bad_chains},
      {"copy_ups", r.copy_ups},
      {"copy_up",
       {{"failed", r.copy_up_failures},
        {"bytes", r.copy_up_bytes},
        {"total_ns", r.copy_up_total_ns},
        {"duration_us_log2", r.copy_up_us_log2},
        {"promotions", r.promotions},
        {"promotions_failed", r.promotion_failures}}},
      {"quota",
       {{"limit_bytes", optional_number(stats.quota_limit_bytes)},
        {"used_bytes", optional_number(stats.quota_used_bytes)}}},
  };
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string rfc3339_utc(int64_t unix_ms) {
  int64_t secs = unix_ms / 1000;
  int64_t ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  const time_t t = static_cast<time_t>(secs);
  tm utc{};
  gmtime_r(&t, &utc);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms));
  return buf;
}

std::string errno_name(int err) {
  if (const char* name = strerrorname_np(err)) return name;
  return "E" + std::to_string(err);
}

}  // namespace sandfs::http
