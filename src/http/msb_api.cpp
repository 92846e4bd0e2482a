#include "http/msb_api.hpp"

#include <exception>
#include <limits>
#include <new>

#include <nlohmann/json.hpp>

#include "http/schema.hpp"
#include "volumes/volume.hpp"
#include "volumes/volume_store.hpp"

namespace sandfs::http {

using json = nlohmann::json;
using volumes::Error;
using volumes::ErrorCode;
using volumes::Outcome;

namespace {

constexpr uint64_t gib = uint64_t{1} << 30;
constexpr uint64_t max_capacity_gib = uint64_t{1} << 20;  // 1 PiB

ApiResponse json_response(unsigned status, const json& body) {
  ApiResponse r;
  r.status = status;
  // Names and paths are UTF-8 checked on the way in, but a host-side name need not be.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

ApiResponse message(std::string text) {
  return json_response(200, json{{"message", std::move(text)}});
}

Error invalid(std::string message) {
  return Error{ErrorCode::invalid_request, std::move(message)};
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

json labels_json(const volumes::Labels& labels) {
  json out = json::object();
  for (const auto& [k, v] : labels)
    out[k] = v;
  return out;
}

// `host`: the --msb-default-volume volume, which the cloud calls its "host" volume (the SDK sets
// isDefault from that kind); every other volume is "managed".
json msb_volume_json(const volumes::VolumeInfo& v, bool host) {
  const bool dir = v.kind == volumes::VolumeKind::dir;
  const std::optional<uint64_t> capacity = dir ? v.quota_bytes : v.capacity_bytes;
  return json{
      {"id", v.id},
      {"name", v.name},
      {"kind", host ? "host" : "managed"},
      {"storage", std::string(volumes::to_string(v.kind))},
      {"status", "active"},
      {"used_bytes", v.used_bytes},
      {"capacity_bytes", capacity ? json(*capacity) : json(nullptr)},
      {"labels", labels_json(v.labels)},
      {"created_at", rfc3339_utc(v.created_at_ms)},
      {"updated_at", rfc3339_utc(v.updated_at_ms)},
  };
}

// The SDK decodes kind as file|directory only (an unknown value fails the whole response), so a
// symlink or a special file is reported as a file; its mode keeps the permission bits only.
json msb_file_json(const volumes::FileStat& s) {
  return json{
      {"path", s.path},
      {"kind", s.kind == volumes::FileKind::directory ? "directory" : "file"},
      {"size", s.size},
      {"mode", s.mode},
      {"uid", s.uid},
      {"gid", s.gid},
      {"readonly", (s.mode & 0222) == 0},
      {"accessed_at", rfc3339_utc(s.atime_ms)},
      {"modified_at", rfc3339_utc(s.mtime_ms)},
      {"created_at", rfc3339_utc(s.ctime_ms)},
  };
}

Outcome<json> parse_object(std::string_view body) {
  if (body.empty()) return invalid("the request body must be a JSON object");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    return invalid("the request body is not valid JSON (at byte " + std::to_string(e.byte) + ")");
  }
  if (!j.is_object()) return invalid("the request body must be a JSON object");
  return j;
}

std::optional<Error> only_fields(const json& object,
                                 std::initializer_list<std::string_view> known) {
  for (const auto& item : object.items()) {
    bool ok = false;
    for (std::string_view k : known)
      ok = ok || item.key() == k;
    if (!ok) return invalid(item.key() + ": unknown field");
  }
  return std::nullopt;
}

// capacity_gib: a whole, non-zero number of GiB → quota bytes.
Outcome<uint64_t> capacity_of(const json& v) {
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() <= 0) ||
      v.get<uint64_t>() == 0 || v.get<uint64_t>() > max_capacity_gib) {
    return invalid("capacity_gib: must be a whole number of GiB from 1 to " +
                   std::to_string(max_capacity_gib));
  }
  return v.get<uint64_t>() * gib;
}

Outcome<volumes::Labels> labels_of(const json& v) {
  volumes::Labels labels;
  if (v.is_null()) return labels;
  if (!v.is_object()) return invalid("labels: must be an object of strings");
  for (const auto& item : v.items()) {
    if (!item.value().is_string()) return invalid("labels." + item.key() + ": must be a string");
    if (item.key().empty()) return invalid("labels: a label key must not be empty");
    labels[item.key()] = item.value().get<std::string>();
  }
  return labels;
}

// A plain path string of a JSON body (mkdir, copy, rename).
Outcome<std::string> body_path(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) {
    return invalid(std::string(key) + ": required, a string");
  }
  std::string p = it->get<std::string>();
  if (p.find('\0') != std::string::npos) {
    return Error{ErrorCode::invalid_path, std::string(key) + ": the path has a NUL byte"};
  }
  return p;
}

}  // namespace

std::optional<std::string_view> strip_msb_prefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || !path.starts_with(prefix)) return std::nullopt;
  const std::string_view rest = path.substr(prefix.size());
  if (!rest.empty() && rest.front() != '/') return std::nullopt;
  return rest;
}

std::optional<std::string> parse_msb_prefix(std::string_view text, std::string& error) {
  if (text == "none") return std::string();
  if (text.empty() || text.front() != '/') {
    error = "must start with '/' (e.g. /msb) or be none";
    return std::nullopt;
  }
  if (text.size() > 1 && text.back() == '/') {
    error = "must not end with '/'";
    return std::nullopt;
  }
  if (text == "/") {
    error = "must name a path below / (the native API owns /v1)";
    return std::nullopt;
  }
  std::string_view rest = text.substr(1);
  while (!rest.empty()) {
    const size_t slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    if (seg.empty() || seg == "." || seg == "..") {
      error = "has an empty, '.' or '..' segment";
      return std::nullopt;
    }
    for (char c : seg) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
      if (!ok) {
        error = "may hold only letters, digits and - _ . ~ between slashes";
        return std::nullopt;
      }
    }
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  }
  if (text == "/v1" || text.starts_with("/v1/") || text == "/healthz" || text == "/metrics") {
    error = "would hide a route of the native API";
    return std::nullopt;
  }
  return std::string(text);
}

Outcome<MsbMatch> match_msb_route(std::string_view path) {
  MsbMatch m;
  if (path == "/v1/sandboxes" || path.starts_with("/v1/sandboxes/")) {
    m.route = MsbRoute::sandboxes;
    return m;
  }
  if (path == "/v1/billing" || path.starts_with("/v1/billing/")) {
    m.route = MsbRoute::billing;
    return m;
  }
  if (path == "/v1/volumes") {
    m.route = MsbRoute::volumes;
    return m;
  }
  if (!path.starts_with("/v1/volumes/")) return m;
  std::string_view rest = path.substr(12);
  const size_t slash = rest.find('/');
  const std::string_view raw_id = rest.substr(0, slash);
  if (raw_id.empty()) return m;
  if (slash == std::string_view::npos && raw_id == "default") {
    m.route = MsbRoute::volume_default;
    return m;
  }
  auto id = percent_decode(raw_id);
  if (!id) {
    return Error{ErrorCode::invalid_request, "malformed percent-escape or NUL in the volume id"};
  }
  if (slash == std::string_view::npos) {
    m.route = MsbRoute::volume;
    m.id = std::move(*id);
    return m;
  }
  const std::string_view tail = rest.substr(slash + 1);
  static constexpr std::pair<std::string_view, MsbRoute> file_routes[] = {
      {"files", MsbRoute::files},
      {"files/content", MsbRoute::files_content},
      {"files/stat", MsbRoute::files_stat},
      {"files/exists", MsbRoute::files_exists},
      {"files/mkdir", MsbRoute::files_mkdir},
      {"files/copy", MsbRoute::files_copy},
      {"files/rename", MsbRoute::files_rename},
  };
  for (const auto& [suffix, route] : file_routes) {
    if (tail == suffix) {
      m.route = route;
      m.id = std::move(*id);
      return m;
    }
  }
  return m;
}

bool msb_method_allowed(MsbRoute route, Method method) {
  switch (route) {
    case MsbRoute::volumes:
      return method == Method::get || method == Method::post;
    case MsbRoute::volume_default:
    case MsbRoute::files_stat:
    case MsbRoute::files_exists:
      return method == Method::get;
    case MsbRoute::volume:
      return method == Method::get || method == Method::patch || method == Method::delete_;
    case MsbRoute::files:
      return method == Method::get || method == Method::delete_;
    case MsbRoute::files_content:
      return method == Method::get || method == Method::put;
    case MsbRoute::files_mkdir:
    case MsbRoute::files_copy:
    case MsbRoute::files_rename:
      return method == Method::post;
    case MsbRoute::sandboxes:
    case MsbRoute::billing:
      return method != Method::other;
    case MsbRoute::none:
      break;
  }
  return false;
}

std::string msb_allowed_methods(MsbRoute route) {
  return allow_header([route](Method m) { return msb_method_allowed(route, m); });
}

Outcome<std::string> decode_msb_path(std::string_view text) {
  const auto bad = [](std::string what) {
    return Error{ErrorCode::invalid_path, "x-msb-file-path: " + std::move(what)};
  };
  if (text.find('=') != std::string_view::npos) {
    return bad("must be base64url without padding ('=' found)");
  }
  if (text.size() % 4 == 1) return bad("is not valid base64url (its length cannot be)");
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = b64_value(c);
    if (v < 0) {
      return bad("has a character outside the base64url alphabet (A-Z a-z 0-9 - _)");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) {
    return bad("is not canonical base64url (the unused low bits of the last character are set)");
  }
  if (out.find('\0') != std::string::npos) return bad("decodes to a path with a NUL byte");
  if (!valid_utf8(out)) return bad("decodes to bytes that are not UTF-8");
  return out;
}

std::string encode_msb_path(std::string_view path) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : path) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

std::pair<unsigned, std::string_view> msb_error_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_request:
    case ErrorCode::invalid_name:
    case ErrorCode::invalid_config:
      return {400, "invalid_request"};
    case ErrorCode::invalid_path:
    case ErrorCode::path_escape:
      return {400, "invalid_volume_path"};
    case ErrorCode::volume_not_found:
      return {404, "volume_not_found"};
    case ErrorCode::file_not_found:
      return {404, "volume_file_not_found"};
    default:
      break;
  }
  return {http_status(code), volumes::code_name(code)};
}

ApiResponse msb_error_response(unsigned status, std::string_view code, std::string_view message) {
  ApiResponse r;
  r.status = status;
  const json body = {{"error", {{"code", code}, {"message", message}, {"details", nullptr}}}};
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

ApiResponse msb_error_response(const Error& error) {
  const auto [status, code] = msb_error_status(error.code);
  return msb_error_response(status, code, error.message);
}

MsbApi::MsbApi(volumes::VolumeStore& store, Api& api, std::string default_volume)
    : store_(store), api_(api), default_volume_(std::move(default_volume)) {}

ApiResponse MsbApi::handle(const MsbRequest& request) {
  try {
    return dispatch(request);
  } catch (const std::bad_alloc&) {
    return msb_error_response(Error{ErrorCode::internal, "out of memory"});
  } catch (const std::exception& e) {
    return msb_error_response(Error{ErrorCode::internal, e.what()});
  }
}

ApiResponse MsbApi::uploaded(uint64_t bytes) {
  return json_response(
      200, json{{"message", "wrote " + std::to_string(bytes) + " bytes"}, {"size", bytes}});
}

ApiResponse MsbApi::dispatch(const MsbRequest& request) {
  switch (request.match.route) {
    case MsbRoute::volumes:
      if (request.method == Method::post) return create_volume(request);
      return list_volumes();
    case MsbRoute::volume_default:
      return default_volume();
    case MsbRoute::volume:
      return volume_route(request);
    case MsbRoute::sandboxes:
      return msb_error_response(501, "unsupported",
                                "sandfs serves volumes only: sandboxes are not available on this "
                                "server (run them with the local microsandbox backend)");
    case MsbRoute::billing:
      return msb_error_response(501, "unsupported",
                                "sandfs has no billing or usage accounting; per-volume usage is "
                                "used_bytes of GET /v1/volumes");
    case MsbRoute::files:
    case MsbRoute::files_stat:
    case MsbRoute::files_exists:
    case MsbRoute::files_mkdir:
    case MsbRoute::files_copy:
    case MsbRoute::files_rename:
      return files_route(request);
    case MsbRoute::files_content:
    case MsbRoute::none:
      break;
  }
  return msb_error_response(Error{ErrorCode::internal, "this route is not handled here"});
}

bool MsbApi::is_default(const volumes::VolumeInfo& v) const {
  return !default_volume_.empty() && v.name == default_volume_;
}

ApiResponse MsbApi::list_volumes() {
  auto list = store_.list();
  if (!list) return msb_error_response(list.error());
  json out = json::array();
  for (const auto& v : *list)
    out.push_back(msb_volume_json(v, is_default(v)));
  return json_response(200, out);
}

ApiResponse MsbApi::create_volume(const MsbRequest& request) {
  auto j = parse_object(request.body);
  if (!j) return msb_error_response(j.error());
  if (auto e = only_fields(*j, {"name", "labels", "capacity_gib", "storage"})) {
    return msb_error_response(*e);
  }
  volumes::CreateVolume create;
  auto name = j->find("name");
  if (name == j->end() || !name->is_string()) {
    return msb_error_response(invalid("name: required, a string"));
  }
  create.name = name->get<std::string>();
  if (auto l = j->find("labels"); l != j->end()) {
    auto labels = labels_of(*l);
    if (!labels) return msb_error_response(labels.error());
    create.labels = std::move(*labels);
  }
  if (auto c = j->find("capacity_gib"); c != j->end() && !c->is_null()) {
    auto bytes = capacity_of(*c);
    if (!bytes) return msb_error_response(bytes.error());
    create.quota_bytes = *bytes;
  }
  if (auto s = j->find("storage"); s != j->end() && !s->is_null()) {
    // The cloud knows one storage class; here every volume made through /msb is a dir volume.
    if (!s->is_string() || (*s != "block" && *s != "dir")) {
      return msb_error_response(
          invalid("storage: must be \"block\" or \"dir\" (both make a dir "
                  "volume)"));
    }
  }
  auto made = store_.create(create);
  if (!made) return msb_error_response(made.error());
  return json_response(200, msb_volume_json(*made, is_default(*made)));
}

ApiResponse MsbApi::default_volume() {
  if (default_volume_.empty()) {
    return msb_error_response(404, "volume_not_found",
                              "this server has no default volume (start sandfsd serve with "
                              "--msb-default-volume NAME to give it one)");
  }
  auto v = store_.get(default_volume_);
  if (!v) {
    return msb_error_response(404, "volume_not_found",
                              "the default volume '" + default_volume_ +
                                  "' (--msb-default-volume) does not exist: create it first");
  }
  return json_response(200, msb_volume_json(*v, true));
}

Outcome<volumes::VolumeInfo> MsbApi::volume(const std::string& id, bool measure) {
  if (!is_uuid(id)) {
    return Error{ErrorCode::volume_not_found,
                 "no volume with id \"" + id + "\" (volumes are addressed by their UUID here)"};
  }
  if (measure) return store_.get_by_id(id);
  return store_.locate_by_id(id);
}

ApiResponse MsbApi::volume_route(const MsbRequest& request) {
  auto v = volume(request.match.id, request.method == Method::get);
  if (!v) return msb_error_response(v.error());
  if (request.method == Method::get) return json_response(200, msb_volume_json(*v, is_default(*v)));
  if (request.method == Method::delete_) {
    if (is_default(*v)) {
      return msb_error_response(409, "volume_in_use",
                                "the default volume cannot be removed through this API (it is "
                                "sandfsd serve's --msb-default-volume)");
    }
    auto removed = store_.remove(v->name);
    if (!removed) return msb_error_response(removed.error());
    return message("volume " + v->id + " deleted");
  }
  // PATCH: omitted = unchanged, capacity_gib null = no cap, labels replace all (null: none).
  auto j = parse_object(request.body);
  if (!j) return msb_error_response(j.error());
  if (auto e = only_fields(*j, {"capacity_gib", "labels"})) return msb_error_response(*e);
  volumes::UpdateVolume update;
  if (auto c = j->find("capacity_gib"); c != j->end()) {
    if (c->is_null()) {
      update.quota_bytes = std::optional<uint64_t>{};
    } else {
      auto bytes = capacity_of(*c);
      if (!bytes) return msb_error_response(bytes.error());
      update.quota_bytes = std::optional<uint64_t>(*bytes);
    }
  }
  if (auto l = j->find("labels"); l != j->end()) {
    auto labels = labels_of(*l);
    if (!labels) return msb_error_response(labels.error());
    update.labels = std::move(*labels);
  }
  auto updated = store_.update(v->name, update);
  if (!updated) return msb_error_response(updated.error());
  return json_response(200, msb_volume_json(*updated, is_default(*updated)));
}

Outcome<std::unique_ptr<volumes::VolumeFiles>> MsbApi::files(const std::string& id,
                                                             std::string* name) {
  auto v = volume(id, false);
  if (!v) return v.error();
  if (name != nullptr) *name = v->name;
  return api_.files(v->name);
}

namespace {

Outcome<std::string> header_path(const MsbRequest& request, bool required) {
  if (!request.path_header) {
    if (!required) return std::string();
    return Error{ErrorCode::invalid_path,
                 "the x-msb-file-path header (the path, base64url without padding) is required"};
  }
  return decode_msb_path(*request.path_header);
}

Outcome<bool> recursive_flag(const MsbRequest& request) {
  if (!request.recursive_header) return false;
  const std::string& v = *request.recursive_header;
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return invalid("x-msb-file-recursive: must be true or false, not '" + v + "'");
}

}  // namespace

ApiResponse MsbApi::files_route(const MsbRequest& request) {
  std::string name;
  auto files_or = files(request.match.id, &name);
  if (!files_or) return msb_error_response(files_or.error());
  volumes::VolumeFiles& f = **files_or;
  const MsbRoute route = request.match.route;

  if (route == MsbRoute::files_mkdir || route == MsbRoute::files_copy ||
      route == MsbRoute::files_rename) {
    auto j = parse_object(request.body);
    if (!j) return msb_error_response(j.error());
    if (route == MsbRoute::files_mkdir) {
      if (auto e = only_fields(*j, {"path"})) return msb_error_response(*e);
      auto path = body_path(*j, "path");
      if (!path) return msb_error_response(path.error());
      auto made = f.mkdir(*path, true);
      api_.contents_changed(name);
      if (!made) return msb_error_response(made.error());
      return message("created");
    }
    if (auto e = only_fields(*j, {"from", "to"})) return msb_error_response(*e);
    auto from = body_path(*j, "from");
    if (!from) return msb_error_response(from.error());
    auto to = body_path(*j, "to");
    if (!to) return msb_error_response(to.error());
    auto done = route == MsbRoute::files_copy ? f.copy(*from, *to) : f.rename(*from, *to);
    api_.contents_changed(name);
    if (!done) return msb_error_response(done.error());
    return message(route == MsbRoute::files_copy ? "copied" : "renamed");
  }

  // The rest take the path from the header; a list without one lists the root.
  auto path = header_path(request, route != MsbRoute::files || request.method != Method::get);
  if (!path) return msb_error_response(path.error());
  switch (route) {
    case MsbRoute::files: {
      auto recursive = recursive_flag(request);
      if (!recursive) return msb_error_response(recursive.error());
      if (request.method == Method::get) {
        auto entries = f.list(*path, *recursive);
        if (!entries) return msb_error_response(entries.error());
        json out = json::array();
        for (const auto& e : *entries)
          out.push_back(msb_file_json(e));
        return json_response(200, json{{"entries", std::move(out)}});
      }
      auto removed = *recursive ? f.remove_all(*path) : f.remove(*path);
      api_.contents_changed(name);  // remove_all may fail part way
      if (!removed) return msb_error_response(removed.error());
      return message("removed");
    }
    case MsbRoute::files_stat: {
      auto st = f.stat(*path);
      if (!st) return msb_error_response(st.error());
      return json_response(200, json{{"metadata", msb_file_json(*st)}});
    }
    case MsbRoute::files_exists: {
      auto exists = f.exists(*path);
      if (!exists) return msb_error_response(exists.error());
      return json_response(200, json{{"exists", *exists}});
    }
    default:
      break;
  }
  return msb_error_response(Error{ErrorCode::internal, "this route is not handled here"});
}

Outcome<volumes::VolumeFiles::ReadHandle> MsbApi::open_read(const MsbRequest& request) {
  auto path = header_path(request, true);
  if (!path) return path.error();
  auto files_or = files(request.match.id, nullptr);
  if (!files_or) return files_or.error();
  return (*files_or)->open_read(*path);
}

Outcome<MsbApi::Upload> MsbApi::open_write(const MsbRequest& request) {
  auto path = header_path(request, true);
  if (!path) return path.error();
  Upload up;
  auto files_or = files(request.match.id, &up.volume);
  if (!files_or) return files_or.error();
  auto writer = (*files_or)->open_write(*path, true);
  if (!writer) return writer.error();
  up.writer = std::move(*writer);
  return up;
}

}  // namespace sandfs::http
