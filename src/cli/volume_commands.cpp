#include "cli/volume_commands.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/http_client.hpp"
#include "cli/options.hpp"
#include "core/unique_fd.hpp"
#include "core/units.hpp"

namespace sandfs::cli {

namespace {

using nlohmann::json;

struct Common {
  Endpoint endpoint;
  bool json_output = false;
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> labels;
  std::optional<uint64_t> quota, size;
  std::string kind;
  std::string sandbox;
  bool recursive = false;
  bool parents = true;
};

// The token of a `sandfsd serve` started with its default data dir (the same rule it uses).
std::string default_token_file() {
  return default_data_dir() + "/token";
}

bool read_token(const std::string& file, std::string& token) {
  std::ifstream in(file);
  if (!in) return false;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  return !token.empty();
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "sandfsd: %s\n(see `sandfsd volume --help`)\n", message.c_str());
  return exit_usage;
}

// Parses the options every client command shares, and the per-command ones; the rest are
// positional. Returns -1 when parsing succeeded, else the exit code.
int parse_common(const std::vector<std::string_view>& args, Common& c) {
  std::string token_file;
  std::string token;
  if (const char* u = std::getenv("SANDFS_URL"); u && *u) {
    std::string err;
    if (!parse_server_url(u, c.endpoint, err)) return usage_error("SANDFS_URL: " + err);
  }
  if (const char* s = std::getenv("SANDFS_SOCKET"); s && *s) c.endpoint.unix_socket = s;
  if (const char* t = std::getenv("SANDFS_TOKEN"); t && *t) token = t;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto value = [&](std::string& out) {
      if (const auto eq = a.find('='); eq != std::string_view::npos && a.rfind("--", 0) == 0) {
        out = std::string(a.substr(eq + 1));
        return true;
      }
      if (i + 1 >= args.size()) return false;
      out = std::string(args[++i]);
      return true;
    };
    auto is = [&](std::string_view name) {
      return a == name ||
             (a.size() > name.size() && a.substr(0, name.size()) == name && a[name.size()] == '=');
    };
    std::string v;
    if (a == "--json") {
      c.json_output = true;
    } else if (a == "--recursive" || a == "-r") {
      c.recursive = true;
    } else if (a == "--no-parents") {
      c.parents = false;
    } else if (is("--server")) {
      if (!value(v)) return usage_error("--server needs a value");
      std::string err;
      if (!parse_server_url(v, c.endpoint, err)) return usage_error(err);
    } else if (is("--unix-socket")) {
      if (!value(v)) return usage_error("--unix-socket needs a value");
      c.endpoint.unix_socket = v;
    } else if (is("--token")) {
      if (!value(token)) return usage_error("--token needs a value");
    } else if (is("--token-file")) {
      if (!value(token_file)) return usage_error("--token-file needs a value");
    } else if (is("--label")) {
      if (!value(v)) return usage_error("--label needs KEY=VALUE");
      const auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0)
        return usage_error("--label needs KEY=VALUE, got '" + v + "'");
      c.labels.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (is("--quota") || is("--size")) {
      const bool quota = is("--quota");
      if (!value(v))
        return usage_error(std::string(quota ? "--quota" : "--size") + " needs a size");
      uint64_t bytes = 0;
      if (auto e = parse_size(v, bytes))
        return usage_error(std::string(quota ? "--quota: " : "--size: ") + e.message);
      (quota ? c.quota : c.size) = bytes;
    } else if (is("--kind")) {
      if (!value(c.kind)) return usage_error("--kind needs dir or disk");
    } else if (is("--sandbox")) {
      if (!value(c.sandbox)) return usage_error("--sandbox needs an id");
    } else if (a.size() > 1 && a[0] == '-' && a != "-") {
      return usage_error("unknown option '" + std::string(a) + "'");
    } else {
      c.positional.emplace_back(a);
    }
  }
  if (token.empty()) {
    const std::string file = token_file.empty() ? default_token_file() : token_file;
    if (!file.empty() && !read_token(file, token) && !token_file.empty()) {
      std::fprintf(stderr, "sandfsd: cannot read the token from %s: %s\n", file.c_str(),
                   std::strerror(errno));
      return exit_failure;
    }
  }
  c.endpoint.token = token;
  return -1;
}

std::string url_escape_component(const std::string& s) {
  std::string out = encode_path(s);
  std::string r;
  for (char ch : out)
    r += ch == '/' ? std::string("%2F") : std::string(1, ch);
  return r;
}

// Sends the request; on an HTTP error prints the server's code and message. Returns the parsed
// JSON body for 2xx responses with one, or nothing with `code` set to the exit status.
std::optional<json> call(const Common& c, HttpRequest req, int& code, HttpResponse* raw = nullptr) {
  HttpResponse resp;
  std::string err;
  if (!http_exchange(c.endpoint, req, resp, err)) {
    std::fprintf(stderr, "sandfsd: %s\n", err.c_str());
    code = exit_failure;
    return std::nullopt;
  }
  if (raw) *raw = resp;
  if (resp.status < 200 || resp.status >= 300) {
    std::string what = "HTTP " + std::to_string(resp.status);
    const json body = json::parse(resp.body, nullptr, false);
    if (body.is_object() && body.contains("error") && body["error"].is_object()) {
      const json& e = body["error"];
      what = e.value("code", what) + ": " + e.value("message", std::string());
    }
    if (resp.status == 401 && c.endpoint.token.empty())
      what += " (no token: pass --token, --token-file or SANDFS_TOKEN)";
    std::fprintf(stderr, "sandfsd: %s\n", what.c_str());
    code = exit_failure;
    return std::nullopt;
  }
  code = exit_ok;
  if (resp.body.empty()) return json();
  json body = json::parse(resp.body, nullptr, false);
  return body.is_discarded() ? json() : body;
}

std::string str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "-";
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string size_field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_unsigned()) return "-";
  return format_size(j[key].get<uint64_t>());
}

std::string labels_text(const json& j) {
  if (!j.is_object() || !j.contains("labels") || !j["labels"].is_object() || j["labels"].empty())
    return "-";
  std::string s;
  for (const auto& [k, v] : j["labels"].items()) {
    if (!s.empty()) s += ",";
    s += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return s;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

json volumes_array(const json& body) {
  if (body.is_array()) return body;
  if (body.is_object() && body.contains("volumes")) return body["volumes"];
  return json::array();
}

void print_volumes(const json& list) {
  std::vector<std::vector<std::string>> rows{
      {"NAME", "KIND", "QUOTA", "CAPACITY", "USED", "LABELS", "CREATED"}};
  for (const json& v : list)
    rows.push_back({str(v, "name"), str(v, "kind"), size_field(v, "quota_bytes"),
                    size_field(v, "capacity_bytes"), size_field(v, "used_bytes"), labels_text(v),
                    str(v, "created_at")});
  print_table(rows);
}

void print_volume(const json& v) {
  std::printf("Name:      %s\nId:        %s\nKind:      %s\n", str(v, "name").c_str(),
              str(v, "id").c_str(), str(v, "kind").c_str());
  if (str(v, "kind") == "disk") {
    std::printf("Capacity:  %s\nFormat:    %s\nFstype:    %s\n",
                size_field(v, "capacity_bytes").c_str(), str(v, "disk_format").c_str(),
                str(v, "disk_fstype").c_str());
  } else {
    const std::string q = size_field(v, "quota_bytes");
    std::printf("Quota:     %s\n", q == "-" ? "unlimited" : q.c_str());
  }
  std::printf("Used:      %s\nPath:      %s\nCreated:   %s\nLabels:    %s\n",
              size_field(v, "used_bytes").c_str(), str(v, "path").c_str(),
              str(v, "created_at").c_str(), labels_text(v).c_str());
}

int need(const Common& c, size_t min, size_t max, const char* what) {
  if (c.positional.size() < min || c.positional.size() > max)
    return usage_error(std::string("usage: sandfsd volume ") + what);
  return -1;
}

std::string file_target(const std::string& volume, const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.front() == '/')
    p.erase(0, 1);  // "volume get v /a/b" means a/b inside the volume
  return "/v1/volumes/" + url_escape_component(volume) + "/files/" + encode_path(p);
}

}  // namespace

std::string volume_usage_text() {
  return R"(usage: sandfsd volume COMMAND [ARGS] [OPTIONS]

Talks to a running `sandfsd serve`.

commands:
  create NAME [--kind dir|disk] [--quota SIZE] [--size SIZE] [--label K=V]...
  ls [--label K=V]...             volumes, newest first (only those with every label given)
  inspect NAME
  rm NAME...                      removes each (continues past failures)
  put NAME PATH [FILE]            writes FILE (default stdin) to PATH in the volume
  get NAME PATH [FILE]            reads PATH into FILE (default stdout)
  mkdir NAME PATH                 with parents (--no-parents: only the last component)
  files NAME [PATH] [--recursive] lists a directory of the volume
sandfsd mount-ls [--sandbox ID]   mounts the server runs

options:
  --json                 print the server's JSON instead of a table
  --server URL           http://HOST:PORT of the server (env SANDFS_URL; default
                         http://127.0.0.1:7270)
  --unix-socket PATH     talk to the server's Unix socket instead (env SANDFS_SOCKET)
  --token TOKEN          bearer token (env SANDFS_TOKEN)
  --token-file FILE      read the token from FILE (default: the token file of the default
                         data dir, /var/lib/sandfs/token for root)
SIZE: 4096, 512K, 64M, 1G, ... (powers of 1024)
)";
}

int run_volume_command(const std::vector<std::string_view>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(volume_usage_text().c_str(), args.empty() ? stderr : stdout);
    return args.empty() ? exit_usage : exit_ok;
  }
  const std::string sub(args[0]);
  Common c;
  if (const int rc = parse_common({args.begin() + 1, args.end()}, c); rc >= 0) return rc;
  int code = exit_ok;

  if (sub == "create") {
    if (const int rc = need(
            c, 1, 1, "create NAME [--kind dir|disk] [--quota SIZE] [--size SIZE] [--label K=V]");
        rc >= 0)
      return rc;
    json body{{"name", c.positional[0]}};
    if (!c.kind.empty()) body["kind"] = c.kind;
    if (c.quota) body["quota_bytes"] = *c.quota;
    if (c.size) body["size_mib"] = (*c.size + (1u << 20) - 1) >> 20;
    if (!c.labels.empty()) {
      json l = json::object();
      for (const auto& [k, v] : c.labels)
        l[k] = v;
      body["labels"] = l;
    }
    auto r = call(c,
                  {.method = "POST",
                   .target = "/v1/volumes",
                   .content_type = "application/json",
                   .body = body.dump()},
                  code);
    if (!r) return code;
    if (c.json_output)
      std::printf("%s\n", r->dump(2).c_str());
    else
      std::printf("%s\n", str(*r, "name").c_str());
    return exit_ok;
  }
  if (sub == "ls" || sub == "list") {
    if (const int rc = need(c, 0, 0, "ls [--label K=V]..."); rc >= 0) return rc;
    std::string target = "/v1/volumes";
    char sep = '?';
    for (const auto& [k, v] : c.labels) {
      target += sep + std::string("label=") + url_escape_component(k + "=" + v);
      sep = '&';
    }
    auto r = call(c, {.method = "GET", .target = target}, code);
    if (!r) return code;
    if (c.json_output) {
      std::printf("%s\n", r->dump(2).c_str());
    } else {
      const json list = volumes_array(*r);
      if (list.empty())
        std::fprintf(stderr, "No volumes.\n");
      else
        print_volumes(list);
    }
    return exit_ok;
  }
  if (sub == "inspect") {
    if (const int rc = need(c, 1, 1, "inspect NAME"); rc >= 0) return rc;
    auto r =
        call(c, {.method = "GET", .target = "/v1/volumes/" + url_escape_component(c.positional[0])},
             code);
    if (!r) return code;
    if (c.json_output)
      std::printf("%s\n", r->dump(2).c_str());
    else
      print_volume(*r);
    return exit_ok;
  }
  if (sub == "rm" || sub == "remove") {
    if (c.positional.empty()) return usage_error("usage: sandfsd volume rm NAME...");
    int status = exit_ok;
    for (const std::string& name : c.positional) {
      int one = exit_ok;
      if (call(c, {.method = "DELETE", .target = "/v1/volumes/" + url_escape_component(name)},
               one)) {
        if (!c.json_output) std::printf("%s\n", name.c_str());
      } else {
        status = exit_failure;
      }
    }
    return status;
  }
  if (sub == "put") {
    if (const int rc = need(c, 2, 3, "put NAME PATH [FILE]"); rc >= 0) return rc;
    HttpRequest req{.method = "PUT",
                    .target = file_target(c.positional[0], c.positional[1]) +
                              (c.parents ? "?parents=true" : ""),
                    .content_type = "application/octet-stream"};
    UniqueFd file;
    if (c.positional.size() == 3 && c.positional[2] != "-") {
      file = UniqueFd(::open(c.positional[2].c_str(), O_RDONLY | O_CLOEXEC));
      struct stat st {};
      if (!file || ::fstat(file.get(), &st) != 0) {
        std::fprintf(stderr, "sandfsd: cannot open %s: %s\n", c.positional[2].c_str(),
                     std::strerror(errno));
        return exit_failure;
      }
      req.body_fd = file.get();
      if (S_ISREG(st.st_mode)) req.body_size = st.st_size;
    } else {
      req.body_fd = STDIN_FILENO;
    }
    if (!call(c, req, code)) return code;
    return exit_ok;
  }
  if (sub == "get") {
    if (const int rc = need(c, 2, 3, "get NAME PATH [FILE]"); rc >= 0) return rc;
    HttpRequest req{.method = "GET", .target = file_target(c.positional[0], c.positional[1])};
    UniqueFd file;
    std::string tmp;
    if (c.positional.size() == 3 && c.positional[2] != "-") {
      // Into a temporary next to FILE, renamed on success: a failed download leaves FILE alone.
      tmp = c.positional[2] + ".sandfs-partial";
      file = UniqueFd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!file) {
        std::fprintf(stderr, "sandfsd: cannot create %s: %s\n", tmp.c_str(), std::strerror(errno));
        return exit_failure;
      }
      req.response_fd = file.get();
    } else {
      req.response_fd = STDOUT_FILENO;
    }
    const bool ok = call(c, req, code).has_value();
    if (!tmp.empty()) {
      if (ok && ::rename(tmp.c_str(), c.positional[2].c_str()) == 0) return exit_ok;
      ::unlink(tmp.c_str());
      return ok ? exit_failure : code;
    }
    return ok ? exit_ok : code;
  }
  if (sub == "mkdir") {
    if (const int rc = need(c, 2, 2, "mkdir NAME PATH"); rc >= 0) return rc;
    const std::string target = file_target(c.positional[0], c.positional[1]) + "?mkdir" +
                               (c.parents ? "&parents=true" : "&parents=false");
    if (!call(c, {.method = "POST", .target = target}, code)) return code;
    return exit_ok;
  }
  if (sub == "files" || sub == "ls-files") {
    if (const int rc = need(c, 1, 2, "files NAME [PATH] [--recursive]"); rc >= 0) return rc;
    const std::string path = c.positional.size() == 2 ? c.positional[1] : "";
    const std::string target =
        file_target(c.positional[0], path) + "?list" + (c.recursive ? "&recursive=true" : "");
    auto r = call(c, {.method = "GET", .target = target}, code);
    if (!r) return code;
    if (c.json_output) {
      std::printf("%s\n", r->dump(2).c_str());
      return exit_ok;
    }
    const json entries = r->is_array() ? *r
                                       : (r->is_object() && r->contains("entries") ? (*r)["entries"]
                                                                                   : json::array());
    std::vector<std::vector<std::string>> rows{{"KIND", "SIZE", "MODE", "MODIFIED", "PATH"}};
    for (const json& e : entries) {
      char mode[16] = "-";
      if (e.contains("mode") && e["mode"].is_number_unsigned())
        std::snprintf(mode, sizeof mode, "%04o", e["mode"].get<unsigned>() & 07777);
      rows.push_back({str(e, "kind"), e.contains("size") ? e["size"].dump() : "-", mode,
                      str(e, "modified_at") == "-" ? str(e, "mtime") : str(e, "modified_at"),
                      str(e, "path")});
    }
    print_table(rows);
    return exit_ok;
  }
  return usage_error("unknown volume command '" + sub + "'");
}

int run_mount_ls_command(const std::vector<std::string_view>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(volume_usage_text().c_str(), stdout);
    return exit_ok;
  }
  Common c;
  if (const int rc = parse_common(args, c); rc >= 0) return rc;
  if (!c.positional.empty()) return usage_error("usage: sandfsd mount-ls [--sandbox ID] [--json]");
  std::string target = "/v1/mounts";
  if (!c.sandbox.empty()) target += "?sandbox_id=" + url_escape_component(c.sandbox);
  int code = exit_ok;
  auto r = call(c, {.method = "GET", .target = target}, code);
  if (!r) return code;
  if (c.json_output) {
    std::printf("%s\n", r->dump(2).c_str());
    return exit_ok;
  }
  const json list =
      r->is_array() ? *r
                    : (r->is_object() && r->contains("mounts") ? (*r)["mounts"] : json::array());
  if (list.empty()) {
    std::fprintf(stderr, "No mounts.\n");
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows{
      {"ID", "SANDBOX", "SOURCE", "TRANSPORT", "ENDPOINT", "STATE"}};
  for (const json& m : list) {
    std::string source = "-";
    if (m.contains("source") && m["source"].is_object()) {
      const json& s = m["source"];
      source = str(s, "type");
      if (s.contains("name"))
        source += ":" + str(s, "name");
      else if (s.contains("path"))
        source += ":" + str(s, "path");
    }
    std::string transport = "-", endpoint = "-";
    if (m.contains("transport") && m["transport"].is_object()) {
      const json& t = m["transport"];
      transport = str(t, "type");
      endpoint = t.contains("socket_path") ? str(t, "socket_path") : str(t, "mountpoint");
    }
    rows.push_back(
        {str(m, "id"), str(m, "sandbox_id"), source, transport, endpoint, str(m, "state")});
  }
  print_table(rows);
  return exit_ok;
}

}  // namespace sandfs::cli
