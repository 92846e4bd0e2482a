#include "volumes/mount_spec.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/units.hpp"

namespace sandfs::volumes {

std::string_view to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::bind:
      return "bind";
    case SourceKind::named:
      return "named";
    case SourceKind::tmpfs:
      return "tmpfs";
    case SourceKind::disk:
      return "disk";
  }
  return "named";
}

std::string_view to_string(NamedMode mode) {
  switch (mode) {
    case NamedMode::existing:
      return "existing";
    case NamedMode::create:
      return "create";
    case NamedMode::ensure_exists:
      return "ensure-exists";
  }
  return "existing";
}

std::string_view to_string(TransportKind kind) {
  switch (kind) {
    case TransportKind::vhost_user:
      return "vhost-user";
    case TransportKind::fuse:
      return "fuse";
  }
  return "vhost-user";
}

bool valid_sandbox_id(std::string_view id) {
  if (id.empty() || id.size() > max_sandbox_id_length) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {

Error fail(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string bytes_text(uint64_t bytes) {
  return std::to_string(bytes) + " bytes (" + format_size(bytes) + ")";
}

// `field` names an existing directory given by an absolute path.
Outcome<Done> check_host_dir(std::string_view field, const std::string& path) {
  if (path.empty() || path.front() != '/') {
    return fail(ErrorCode::invalid_request,
                std::string(field) + " " + quoted(path) + " is not an absolute path");
  }
  if (path.find('\0') != std::string::npos) {
    return fail(ErrorCode::invalid_request, std::string(field) + " contains a NUL byte");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT) {
      return fail(ErrorCode::invalid_request,
                  std::string(field) + " " + path + " does not exist; create the directory first");
    }
    if (e == ENOTCONN) {
      return fail(ErrorCode::invalid_request,
                  std::string(field) + " " + path +
                      " is a FUSE mount whose server is gone; unmount it (umount -l) first");
    }
    return fail(ErrorCode::invalid_request,
                std::string(field) + " " + path + " cannot be used: " + std::strerror(e));
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::invalid_request,
                std::string(field) + " " + path + " is not a directory");
  }
  return Done{};
}

Outcome<Done> check_empty_dir(std::string_view field, const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    return fail(ErrorCode::invalid_request,
                std::string(field) + " " + path + " cannot be read: " + std::strerror(errno));
  }
  size_t entries = 0;
  while (const dirent* d = ::readdir(dir)) {
    if (std::strcmp(d->d_name, ".") != 0 && std::strcmp(d->d_name, "..") != 0) ++entries;
  }
  ::closedir(dir);
  if (entries != 0) {
    return fail(ErrorCode::invalid_request,
                std::string(field) + " " + path + " is not empty (" + std::to_string(entries) +
                    (entries == 1 ? " entry" : " entries") +
                    "); mounting there would hide them: use an empty directory");
  }
  return Done{};
}

// Fields that only one kind of mount uses: given for another, they would be silently ignored.
Outcome<Done> check_fields_fit_source(const MountSpec& s) {
  const std::string kind = std::string(to_string(s.source));
  if (!s.bind_path.empty() && s.source != SourceKind::bind) {
    return fail(ErrorCode::invalid_config,
                "bind_path is only valid for bind mounts, not for a " + kind + " mount");
  }
  if (!s.volume.empty() && s.source != SourceKind::named) {
    return fail(ErrorCode::invalid_config,
                "volume is only valid for named mounts, not for a " + kind + " mount");
  }
  if (s.quota_bytes && s.source != SourceKind::bind) {
    return fail(
        ErrorCode::invalid_config,
        "quota_bytes is only valid for bind mounts" +
            std::string(s.source == SourceKind::named
                            ? " (a named volume's quota belongs to the volume: set it "
                              "when creating the volume, or with source.quota_mib in mode create)"
                        : s.source == SourceKind::tmpfs ? " (tmpfs uses size_bytes)"
                                                        : ""));
  }
  if (s.size_bytes && s.source != SourceKind::tmpfs) {
    return fail(ErrorCode::invalid_config,
                "source.size_mib (size_bytes) is only valid for tmpfs mounts, not for a " + kind +
                    " mount");
  }
  const bool creates = s.source == SourceKind::named && s.mode != NamedMode::existing;
  if (!creates &&
      (s.create_quota_bytes || !s.create_labels.empty() || s.create_kind != VolumeKind::dir)) {
    return fail(ErrorCode::invalid_config,
                "source.kind, source.quota_mib and source.labels describe the volume a named "
                "mount makes: they need mode create or ensure-exists");
  }
  return Done{};
}

Outcome<Done> check_source(const MountSpec& s) {
  switch (s.source) {
    case SourceKind::disk:
      return fail(ErrorCode::unsupported,
                  "disk mounts are not served yet: mount a directory (bind), a dir volume "
                  "(named) or scratch space (tmpfs)");
    case SourceKind::bind:
      if (s.bind_path.empty()) {
        return fail(ErrorCode::invalid_request,
                    "a bind mount needs bind_path: the absolute path of a host directory");
      }
      if (auto r = check_host_dir("bind_path", s.bind_path); !r) return r;
      if (s.quota_bytes && *s.quota_bytes == 0) {
        return fail(ErrorCode::invalid_request,
                    "quota_bytes must be greater than 0 (leave it out for no quota)");
      }
      return Done{};
    case SourceKind::named:
      if (s.volume.empty()) {
        return fail(ErrorCode::invalid_request, "a named mount needs volume: the volume's name");
      }
      if (!valid_volume_name(s.volume)) {
        return fail(ErrorCode::invalid_name,
                    "volume name " + quoted(s.volume) +
                        " is invalid: use 1 to 128 characters of A-Z a-z 0-9 . _ -, starting "
                        "with a letter or digit");
      }
      if (s.mode != NamedMode::existing && s.create_kind == VolumeKind::disk) {
        return fail(ErrorCode::unsupported,
                    "named volume " + quoted(s.volume) +
                        ": disk volumes cannot be mounted yet; ask for source.kind dir");
      }
      if (s.create_quota_bytes && *s.create_quota_bytes == 0) {
        return fail(ErrorCode::invalid_request,
                    "source.quota_mib must be greater than 0 (leave it out for no quota)");
      }
      return Done{};
    case SourceKind::tmpfs:
      if (s.stat_virtualization != passthrough::StatVirtualization::strict ||
          s.host_permissions != passthrough::HostPermissions::private_) {
        return fail(ErrorCode::invalid_config,
                    "stat_virtualization and host_permissions are only valid for bind and named "
                    "mounts: a tmpfs mount has no host files");
      }
      if (s.size_bytes && *s.size_bytes == 0) {
        return fail(ErrorCode::invalid_request,
                    "size_bytes must be greater than 0 (leave it out for no limit)");
      }
      return Done{};
  }
  return fail(ErrorCode::invalid_request, "unknown source kind");
}

Outcome<Done> check_transport(const MountSpec& s) {
  if (s.transport == TransportKind::vhost_user) {
    if (!s.mountpoint.empty()) {
      return fail(ErrorCode::invalid_config,
                  "mountpoint is only valid for fuse mounts; a vhost-user mount is served on "
                  "socket_path");
    }
    if (s.queues < 1 || s.queues > max_mount_queues) {
      return fail(ErrorCode::invalid_request, "queues must be between 1 and " +
                                                  std::to_string(max_mount_queues) + ", not " +
                                                  std::to_string(s.queues));
    }
    if (!s.socket_path.empty()) {
      if (s.socket_path.front() != '/') {
        return fail(ErrorCode::invalid_request,
                    "socket_path " + quoted(s.socket_path) + " is not an absolute path");
      }
      if (s.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
        return fail(ErrorCode::invalid_request,
                    "socket_path is " + std::to_string(s.socket_path.size()) +
                        " bytes long; a Unix socket path must be shorter than " +
                        std::to_string(sizeof(sockaddr_un::sun_path)));
      }
      if (s.socket_path.find('\0') != std::string::npos) {
        return fail(ErrorCode::invalid_request, "socket_path contains a NUL byte");
      }
    }
    return Done{};
  }
  if (!s.socket_path.empty()) {
    return fail(ErrorCode::invalid_config,
                "socket_path is only valid for vhost-user mounts; a fuse mount is served on "
                "mountpoint");
  }
  if (s.mountpoint.empty()) {
    return fail(ErrorCode::invalid_request,
                "a fuse mount needs mountpoint: an existing empty host directory");
  }
  if (auto r = check_host_dir("mountpoint", s.mountpoint); !r) return r;
  return check_empty_dir("mountpoint", s.mountpoint);
}

}  // namespace

Outcome<Done> validate_mount_spec(const MountSpec& s) {
  if (!valid_sandbox_id(s.sandbox_id)) {
    return fail(
        ErrorCode::invalid_request,
        s.sandbox_id.empty()
            ? std::string("sandbox_id is required: 1 to 128 characters of A-Z a-z 0-9 . _ -")
            : "sandbox_id " + quoted(s.sandbox_id) +
                  " is invalid: use 1 to 128 characters of A-Z a-z 0-9 . _ -");
  }
  if (!s.guest_path.empty() && s.guest_path.front() != '/') {
    return fail(ErrorCode::invalid_request,
                "guest_path " + quoted(s.guest_path) + " is not an absolute path");
  }
  if (auto r = check_fields_fit_source(s); !r) return r;
  if (s.stat_virtualization == passthrough::StatVirtualization::off &&
      s.host_permissions == passthrough::HostPermissions::mirror) {
    return fail(ErrorCode::invalid_config,
                "stat_virtualization off and host_permissions mirror contradict each other: "
                "with off the guest's permission bits already go to the host; use one of them");
  }
  if (auto r = check_source(s); !r) return r;
  return check_transport(s);
}

Outcome<Done> check_ensure_exists(const MountSpec& s, const VolumeInfo& v) {
  const std::string head = "named volume " + quoted(v.name) + " already exists";
  if (s.create_kind != v.kind) {
    return fail(ErrorCode::invalid_config, head + " as " + std::string(to_string(v.kind)) +
                                               ", but this mount requested " +
                                               std::string(to_string(s.create_kind)));
  }
  if (s.create_quota_bytes) {
    if (!v.quota_bytes) {
      return fail(ErrorCode::invalid_config,
                  head + " without a quota, but this mount requested a quota of " +
                      bytes_text(*s.create_quota_bytes));
    }
    if (*v.quota_bytes != *s.create_quota_bytes) {
      return fail(ErrorCode::invalid_config,
                  head + " with a quota of " + bytes_text(*v.quota_bytes) +
                      ", but this mount requested " + bytes_text(*s.create_quota_bytes));
    }
  }
  for (const auto& [key, value] : s.create_labels) {
    auto it = v.labels.find(key);
    if (it == v.labels.end()) {
      return fail(ErrorCode::invalid_config, head + " without label " + quoted(key) +
                                                 ", which this mount requested (" + key + "=" +
                                                 quoted(value) + ")");
    }
    if (it->second != value) {
      return fail(ErrorCode::invalid_config,
                  head + " with label " + key + "=" + quoted(it->second) +
                      ", but this mount requested " + key + "=" + quoted(value));
    }
  }
  return Done{};
}

}  // namespace sandfs::volumes
