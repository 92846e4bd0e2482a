#include "http/api.hpp"

#include <exception>
#include <new>
#include <sstream>

#include "core/stats.hpp"
#include "http/metrics.hpp"
#include "http/schema.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume_store.hpp"

namespace sandfs::http {

using volumes::Error;
using volumes::ErrorCode;

namespace {

ApiResponse json_response(unsigned status, std::string body) {
  ApiResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

ApiResponse no_content() {
  ApiResponse r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

// Prometheus label values escape backslash, double quote and newline.
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

ApiResponse error_response(const Error& error) {
  return json_response(http_status(error.code), error_body(error));
}

ApiResponse error_response(unsigned status, std::string_view code, std::string_view message) {
  return json_response(status, error_body(code, message));
}

bool is_file_download(const ApiRequest& request) {
  return request.match.route == Route::volume_files && request.method == Method::get &&
         !request.query.has("stat") && !request.query.has("list");
}

bool is_file_upload(const ApiRequest& request) {
  return request.match.route == Route::volume_files && request.method == Method::put;
}

Api::Api(volumes::VolumeStore& store, volumes::MountManager& mounts)
    : store_(store), mounts_(mounts) {}

ApiResponse Api::handle(const ApiRequest& request) {
  try {
    return dispatch(request);
  } catch (const std::bad_alloc&) {
    return error_response(Error{ErrorCode::internal, "out of memory"});
  } catch (const std::exception& e) {
    return error_response(Error{ErrorCode::internal, e.what()});
  }
}

void Api::count_request(unsigned status) {
  const unsigned cls = status / 100;
  if (cls < 6) responses_[cls].fetch_add(1, std::memory_order_relaxed);
}

ApiResponse Api::dispatch(const ApiRequest& request) {
  switch (request.match.route) {
    case Route::healthz:
      return json_response(200, R"({"status":"ok"})");
    case Route::metrics: {
      ApiResponse r;
      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
      r.body = metrics();
      return r;
    }
    case Route::volumes:
      return volumes_route(request);
    case Route::volume:
      return volume_route(request);
    case Route::volume_files:
      return files_route(request);
    case Route::mounts:
      return mounts_route(request);
    case Route::mount:
      return mount_route(request);
    case Route::mount_stats:
      return mount_stats_route(request);
    case Route::none:
      break;
  }
  return error_response(404, "route_not_found", "no such route");
}

ApiResponse Api::volumes_route(const ApiRequest& request) {
  if (request.method == Method::post) {
    auto create = parse_create_volume(request.body);
    if (!create) return error_response(create.error());
    auto made = store_.create(*create);
    if (!made) return error_response(made.error());
    return json_response(201, volume_json(*made));
  }
  volumes::Labels selector;
  for (const std::string& label : request.query.all("label")) {
    auto kv = parse_label_selector(label);
    if (!kv) return error_response(kv.error());
    auto [it, inserted] = selector.emplace(kv->first, kv->second);
    if (!inserted && it->second != kv->second) {
      return error_response(Error{ErrorCode::invalid_request,
                                  "label '" + kv->first + "' is selected with two values"});
    }
  }
  auto list = store_.list(selector);
  if (!list) return error_response(list.error());
  return json_response(200, volumes_json(*list));
}

ApiResponse Api::volume_route(const ApiRequest& request) {
  const std::string& name = request.match.name;
  if (request.method == Method::get) {
    auto v = store_.get(name);
    if (!v) return error_response(v.error());
    return json_response(200, volume_json(*v));
  }
  if (request.method == Method::patch) {
    auto update = parse_update_volume(request.body);
    if (!update) return error_response(update.error());
    auto v = store_.update(name, *update);
    if (!v) return error_response(v.error());
    return json_response(200, volume_json(*v));
  }
  auto removed = store_.remove(name);
  if (!removed) return error_response(removed.error());
  return no_content();
}

volumes::Outcome<std::unique_ptr<volumes::VolumeFiles>> Api::files(std::string_view volume) {
  auto info = store_.locate(volume);
  if (!info) return info.error();
  if (info->kind != volumes::VolumeKind::dir) {
    return Error{ErrorCode::unsupported, "volume '" + info->name +
                                             "' is a disk volume: its files cannot be reached " +
                                             "through the API (mount it in a sandbox instead)"};
  }
  return volumes::VolumeFiles::open(info->path, store_.quota(info->name));
}

void Api::contents_changed(std::string_view volume) {
  store_.contents_changed(volume);
}

ApiResponse Api::files_route(const ApiRequest& request) {
  auto path = volumes::normalize_volume_path(request.match.file_path);
  if (!path) return error_response(path.error());
  auto files_or = files(request.match.name);
  if (!files_or) return error_response(files_or.error());
  volumes::VolumeFiles& f = **files_or;

  switch (request.method) {
    case Method::head: {
      auto exists = f.exists(*path);
      if (!exists) return error_response(exists.error());
      if (!*exists) {
        return error_response(Error{ErrorCode::file_not_found, "no such file: " + *path});
      }
      ApiResponse r;
      r.content_type.clear();
      return r;
    }
    case Method::get: {
      if (request.query.has("stat")) {
        auto st = f.stat(*path);
        if (!st) return error_response(st.error());
        return json_response(200, file_stat_json(*st));
      }
      auto recursive = request.query.flag("recursive", false);
      if (!recursive) return error_response(recursive.error());
      auto entries = f.list(*path, *recursive);
      if (!entries) return error_response(entries.error());
      return json_response(200, file_list_json(*path, *entries));
    }
    case Method::post: {
      if (!request.query.has("mkdir")) {
        return error_response(Error{ErrorCode::invalid_request,
                                    "POST on a file path needs ?mkdir (make a directory)"});
      }
      auto parents = request.query.flag("parents", true);
      if (!parents) return error_response(parents.error());
      auto made = f.mkdir(*path, *parents);
      if (!made) return error_response(made.error());
      store_.contents_changed(request.match.name);
      auto st = f.stat(*path);
      if (!st) return error_response(st.error());
      return json_response(201, file_stat_json(*st));
    }
    case Method::delete_: {
      auto recursive = request.query.flag("recursive", false);
      if (!recursive) return error_response(recursive.error());
      auto removed = *recursive ? f.remove_all(*path) : f.remove(*path);
      store_.contents_changed(request.match.name);  // remove_all may fail part way
      if (!removed) return error_response(removed.error());
      return no_content();
    }
    default:
      break;
  }
  return error_response(Error{ErrorCode::internal, "file contents are streamed by the server"});
}

ApiResponse Api::mounts_route(const ApiRequest& request) {
  if (request.method == Method::post) {
    auto spec = parse_mount_spec(request.body);
    if (!spec) return error_response(spec.error());
    auto made = mounts_.create(std::move(*spec));
    if (!made) return error_response(made.error());
    return json_response(201, mount_json(*made));
  }
  const std::string sandbox = request.query.get("sandbox_id").value_or("");
  return json_response(200, mounts_json(mounts_.list(sandbox)));
}

ApiResponse Api::mount_route(const ApiRequest& request) {
  if (request.method == Method::get) {
    auto m = mounts_.get(request.match.name);
    if (!m) return error_response(m.error());
    return json_response(200, mount_json(*m));
  }
  auto removed = mounts_.remove(request.match.name);
  if (!removed) return error_response(removed.error());
  return no_content();
}

ApiResponse Api::mount_stats_route(const ApiRequest& request) {
  auto s = mounts_.stats(request.match.name);
  if (!s) return error_response(s.error());
  return json_response(200, mount_stats_json(request.match.name, *s));
}

std::string Api::metrics() {
  std::ostringstream out;
  auto volumes = store_.list();
  if (volumes) {
    out << "# HELP sandfs_volumes Volumes in the catalog.\n"
        << "# TYPE sandfs_volumes gauge\n"
        << "sandfs_volumes " << volumes->size() << "\n"
        << "# HELP sandfs_volume_used_bytes Bytes stored in a volume.\n"
        << "# TYPE sandfs_volume_used_bytes gauge\n";
    for (const auto& v : *volumes) {
      out << "sandfs_volume_used_bytes{volume=\"" << label_value(v.name) << "\"} " << v.used_bytes
          << "\n";
    }
    out << "# HELP sandfs_volume_quota_bytes The quota of a volume (volumes with one).\n"
        << "# TYPE sandfs_volume_quota_bytes gauge\n";
    for (const auto& v : *volumes) {
      if (!v.quota_bytes) continue;
      out << "sandfs_volume_quota_bytes{volume=\"" << label_value(v.name) << "\"} "
          << *v.quota_bytes << "\n";
    }
  }
  const auto all = mounts_.all_stats();
  out << "# HELP sandfs_mounts Active mounts.\n"
      << "# TYPE sandfs_mounts gauge\n"
      << "sandfs_mounts " << all.size() << "\n";

  auto each_mount = [&](std::string_view metric, std::string_view type, std::string_view help,
                        auto&& emit) {
    out << "# HELP " << metric << " " << help << "\n# TYPE " << metric << " " << type << "\n";
    for (const auto& [info, stats] : all) {
      const std::string labels = "mount=\"" + label_value(info.id) + "\",sandbox=\"" +
                                 label_value(info.spec.sandbox_id) + "\"";
      emit(labels, stats);
    }
  };
  each_mount("sandfs_mount_requests_total", "counter", "FUSE requests served, by opcode.",
             [&](const std::string& l, const volumes::MountStats& s) {
               for (const auto& op : s.requests.ops) {
                 out << "sandfs_mount_requests_total{" << l << ",op=\"" << opcode_name(op.opcode)
                     << "\"} " << op.count << "\n";
               }
             });
  each_mount("sandfs_mount_request_errors_total", "counter",
             "FUSE requests answered with an error, by opcode.",
             [&](const std::string& l, const volumes::MountStats& s) {
               for (const auto& op : s.requests.ops) {
                 out << "sandfs_mount_request_errors_total{" << l << ",op=\""
                     << opcode_name(op.opcode) << "\"} " << op.errors << "\n";
               }
             });
  each_mount("sandfs_mount_errors_total", "counter", "FUSE error replies, by errno.",
             [&](const std::string& l, const volumes::MountStats& s) {
               for (const auto& [err, count] : s.requests.errors_by_errno) {
                 out << "sandfs_mount_errors_total{" << l << ",errno=\"" << errno_name(err)
                     << "\"} " << count << "\n";
               }
             });
  each_mount("sandfs_mount_read_bytes_total", "counter", "Bytes read by the guest.",
             [&](const std::string& l, const volumes::MountStats& s) {
               out << "sandfs_mount_read_bytes_total{" << l << "} " << s.requests.bytes_read
                   << "\n";
             });
  each_mount("sandfs_mount_written_bytes_total", "counter", "Bytes written by the guest.",
             [&](const std::string& l, const volumes::MountStats& s) {
               out << "sandfs_mount_written_bytes_total{" << l << "} " << s.requests.bytes_written
                   << "\n";
             });
  each_mount("sandfs_mount_in_flight", "gauge", "FUSE requests being served now.",
             [&](const std::string& l, const volumes::MountStats& s) {
               out << "sandfs_mount_in_flight{" << l << "} " << s.requests.in_flight << "\n";
             });
  each_mount("sandfs_mount_connections_total", "counter",
             "Connections served: vhost-user frontends that connected, 1 for a fuse mount.",
             [&](const std::string& l, const volumes::MountStats& s) {
               out << "sandfs_mount_connections_total{" << l << "} " << s.connections << "\n";
             });
  each_mount("sandfs_mount_quota_limit_bytes", "gauge", "The quota over the mount's volume.",
             [&](const std::string& l, const volumes::MountStats& s) {
               if (s.quota_limit_bytes) {
                 out << "sandfs_mount_quota_limit_bytes{" << l << "} " << *s.quota_limit_bytes
                     << "\n";
               }
             });
  each_mount("sandfs_mount_quota_used_bytes", "gauge", "Bytes charged to that quota.",
             [&](const std::string& l, const volumes::MountStats& s) {
               if (s.quota_used_bytes) {
                 out << "sandfs_mount_quota_used_bytes{" << l << "} " << *s.quota_used_bytes
                     << "\n";
               }
             });
  std::vector<MountSeries> series;
  series.reserve(all.size());
  for (const auto& [info, stats] : all) {
    series.push_back(MountSeries{"mount=\"" + label_value(info.id) + "\",sandbox=\"" +
                                     label_value(info.spec.sandbox_id) + "\"",
                                 &stats.requests});
  }
  out << copy_up_metrics(series);
  out << "# HELP sandfs_http_responses_total Admin API responses, by status class.\n"
      << "# TYPE sandfs_http_responses_total counter\n";
  for (unsigned cls = 1; cls < 6; ++cls) {
    out << "sandfs_http_responses_total{class=\"" << cls << "xx\"} "
        << responses_[cls].load(std::memory_order_relaxed) << "\n";
  }
  return out.str();
}

}  // namespace sandfs::http
