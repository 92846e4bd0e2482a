#include "http/router.hpp"

#include <array>

namespace sandfs::http {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Error bad(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

constexpr std::array<Method, 6> all_methods = {Method::get, Method::head,  Method::post,
                                               Method::put, Method::patch, Method::delete_};

}  // namespace

Method parse_method(std::string_view text) {
  if (text == "GET") return Method::get;
  if (text == "HEAD") return Method::head;
  if (text == "POST") return Method::post;
  if (text == "PUT") return Method::put;
  if (text == "PATCH") return Method::patch;
  if (text == "DELETE") return Method::delete_;
  return Method::other;
}

std::string_view to_string(Method method) {
  switch (method) {
    case Method::get:
      return "GET";
    case Method::head:
      return "HEAD";
    case Method::post:
      return "POST";
    case Method::put:
      return "PUT";
    case Method::patch:
      return "PATCH";
    case Method::delete_:
      return "DELETE";
    case Method::other:
      break;
  }
  return "OTHER";
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

Outcome<RouteMatch> match_route(std::string_view path) {
  RouteMatch m;
  if (path == "/healthz") {
    m.route = Route::healthz;
    return m;
  }
  if (path == "/metrics") {
    m.route = Route::metrics;
    return m;
  }
  if (!path.starts_with("/v1/")) return m;
  std::string_view rest = path.substr(4);
  size_t slash = rest.find('/');
  const std::string_view collection = rest.substr(0, slash);
  if (collection != "volumes" && collection != "mounts") return m;
  const bool is_volumes = collection == "volumes";
  if (slash == std::string_view::npos) {
    m.route = is_volumes ? Route::volumes : Route::mounts;
    return m;
  }
  rest = rest.substr(slash + 1);
  slash = rest.find('/');
  // "/v1/volumes/" and "/v1/volumes//x" name no volume.
  const std::string_view raw_name = rest.substr(0, slash);
  if (raw_name.empty()) return m;
  auto name = percent_decode(raw_name);
  if (!name) {
    return bad(ErrorCode::invalid_request,
               "malformed percent-escape or NUL in the " +
                   std::string(is_volumes ? "volume name" : "mount id"));
  }
  if (slash == std::string_view::npos) {
    m.route = is_volumes ? Route::volume : Route::mount;
    m.name = std::move(*name);
    return m;
  }
  const std::string_view tail = rest.substr(slash + 1);
  if (is_volumes) {
    if (tail == "files" || tail.starts_with("files/")) {
      const std::string_view raw_file = tail == "files" ? std::string_view{} : tail.substr(6);
      auto file = percent_decode(raw_file);
      if (!file) {
        return bad(ErrorCode::invalid_path,
                   "the file path has a malformed percent-escape or an encoded NUL (%00)");
      }
      m.route = Route::volume_files;
      m.name = std::move(*name);
      m.file_path = std::move(*file);
    }
    return m;
  }
  if (tail == "stats") {
    m.route = Route::mount_stats;
    m.name = std::move(*name);
  }
  return m;
}

bool method_allowed(Route route, Method method) {
  switch (route) {
    case Route::healthz:
      return method == Method::get || method == Method::head;
    case Route::metrics:
    case Route::mount_stats:
      return method == Method::get;
    case Route::volumes:
    case Route::mounts:
      return method == Method::get || method == Method::post;
    case Route::volume:
      return method == Method::get || method == Method::patch || method == Method::delete_;
    case Route::volume_files:
      return method == Method::get || method == Method::head || method == Method::put ||
             method == Method::delete_ || method == Method::post;
    case Route::mount:
      return method == Method::get || method == Method::delete_;
    case Route::none:
      break;
  }
  return false;
}

std::string allow_header(const std::function<bool(Method)>& allowed) {
  std::string out;
  for (Method m : all_methods) {
    if (!allowed(m)) continue;
    if (!out.empty()) out += ", ";
    out += to_string(m);
  }
  return out;
}

std::string allowed_methods(Route route) {
  return allow_header([route](Method m) { return method_allowed(route, m); });
}

Outcome<Query> Query::parse(std::string_view text) {
  Query q;
  while (!text.empty()) {
    const size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
    if (!key || !value) {
      return Error{ErrorCode::invalid_request,
                   "query parameter '" + std::string(pair.substr(0, eq)) +
                       "' has a malformed percent-escape or an encoded NUL"};
    }
    q.items_.emplace_back(std::move(*key), std::move(*value));
  }
  return q;
}

bool Query::has(std::string_view key) const {
  for (const auto& [k, v] : items_) {
    if (k == key) return true;
  }
  return false;
}

std::optional<std::string> Query::get(std::string_view key) const {
  std::optional<std::string> out;
  for (const auto& [k, v] : items_) {
    if (k == key) out = v;
  }
  return out;
}

std::vector<std::string> Query::all(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : items_) {
    if (k == key) out.push_back(v);
  }
  return out;
}

Outcome<bool> Query::flag(std::string_view key, bool fallback) const {
  const auto value = get(key);
  if (!value) return fallback;
  if (*value == "true" || *value == "1" || value->empty()) return true;
  if (*value == "false" || *value == "0") return false;
  return Error{ErrorCode::invalid_request, "query parameter '" + std::string(key) +
                                               "' must be true or false, not '" + *value + "'"};
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

}  // namespace sandfs::http
