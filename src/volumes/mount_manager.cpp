// MountManager (mount_manager.hpp): a table of mounts, each a backend factory and a running
// transport.
//
// ## Life of a mount
// create(): validate (mount_spec.hpp) → reserve the id, socket path or mountpoint in the table
// (state `starting`, so a concurrent create cannot take the same path and VolumeStore::remove
// already sees the volume as used) → resolve the source (the catalog: get, create, the
// ensure-exists check) → build one backend, so a root that cannot be served fails here with its
// reason rather than at the first connection → start the transport → `active`. Any failure
// undoes what this create did, including a volume it created (never one that existed before).
// remove(): `removing` → stop the transport outside the lock → drop the record.
//
// ## Backends
// bind and named: a PassthroughFs per connection on the host directory; its quota (the volume's,
// from VolumeStore::quota, or a bind mount's own) is one Quota object shared by every connection
// of the mount (and, for a volume, by its other mounts and the host-side file API), counted once.
// tmpfs: a MemFs per connection with size_bytes as capacity. Over vhost-user that means a
// frontend that reconnects (the VMM restarted) finds its scratch space empty, as a guest tmpfs
// would be after a reboot; over fuse there is one connection for the mount's lifetime.
//
// ## Mount flags
// fuse: readonly and noexec become MS_RDONLY / MS_NOEXEC of the host mount. nosuid and nodev are
// always set on the host, whatever the spec says: the files belong to a sandbox, and a setuid or
// device node it made must never take effect on the host (MountInfo shows them as true).
// vhost-user: the guest kernel mounts the share, so noexec/nosuid/nodev are options for the guest
// to apply; they are only recorded here. readonly is enforced by the backend as well (EROFS).
#include "volumes/mount_manager.hpp"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "backends/memfs/memfs.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "backends/passthrough/quota.hpp"
#include "core/io/io_threads.hpp"
#include "core/log.hpp"
#include "core/session.hpp"
#include "transport/fuse_dev/fuse_dev_server.hpp"
#include "transport/fuse_dev/fuse_mount.hpp"
#include "transport/vhost_user/server.hpp"
#include "volumes/mount_spec.hpp"
#include "volumes/uuid.hpp"
#include "volumes/volume_store.hpp"

namespace sandfs::volumes {

namespace {

// How long remove() gives a detached fuse mount to end on its own (the kernel ends an idle
// connection at once) before it stops the server, which aborts what open files still hold.
constexpr auto fuse_detach_grace = std::chrono::milliseconds(1000);
// How long ensure-exists waits for a volume someone else is creating (mkfs of a disk volume
// may take a while).
constexpr auto ensure_exists_patience = std::chrono::seconds(30);

Error fail(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Builds the backends of one mount. Shared with the vhost-user factory, which runs on the server
// threads, so it outlives the record if a connection is still ending.
class BackendSource : public std::enable_shared_from_this<BackendSource> {
 public:
  BackendSource(SourceKind kind, passthrough::PassthroughConfig pt, memfs::MemFsConfig mem)
      : kind_(kind), passthrough_(std::move(pt)), memfs_(mem) {}

  // A new backend, or null with `error` for a person. Blocking (opens and checks the root).
  std::shared_ptr<Filesystem> make(std::string& error) {
    if (kind_ == SourceKind::tmpfs) {
      try {
        auto fs = memfs::make_memfs(memfs_);
        std::lock_guard lock(mu_);
        std::erase_if(memfs_live_, [](const auto& w) { return w.expired(); });
        memfs_live_.push_back(fs);
        return fs;
      } catch (const std::exception& e) {
        error = std::string("cannot create the tmpfs backend: ") + e.what();
        return nullptr;
      }
    }
    passthrough::MakeResult made = passthrough::make_passthrough(passthrough_);
    if (!made) {
      std::string why = made.error.empty() ? std::strerror(made.err) : made.error;
      std::replace(why.begin(), why.end(), '\n', ' ');
      error = why.find(passthrough_.root) != std::string::npos
                  ? "cannot serve it: " + why
                  : "cannot serve " + passthrough_.root + ": " + why;
      last_err_ = made.err;
      return nullptr;
    }
    return made.fs;
  }

  // `fs` handed to a connection: counted as live until the connection lets go of it.
  std::shared_ptr<Filesystem> hand_out(std::shared_ptr<Filesystem> fs) {
    live_.fetch_add(1, std::memory_order_relaxed);
    Filesystem* raw = fs.get();
    return std::shared_ptr<Filesystem>(
        raw, [fs = std::move(fs), self = shared_from_this()](Filesystem*) mutable {
          fs.reset();
          self->live_.fetch_sub(1, std::memory_order_relaxed);
        });
  }

  int live() const { return live_.load(std::memory_order_relaxed); }
  int last_errno() const { return last_err_; }
  // tmpfs: bytes held by the backends still alive.
  uint64_t memfs_used() {
    std::lock_guard lock(mu_);
    uint64_t used = 0;
    for (const auto& w : memfs_live_) {
      if (auto fs = w.lock()) used += fs->used_bytes();
    }
    return used;
  }

 private:
  const SourceKind kind_;
  const passthrough::PassthroughConfig passthrough_;
  const memfs::MemFsConfig memfs_;
  std::atomic<int> live_{0};
  std::atomic<int> last_err_{0};
  std::mutex mu_;
  std::vector<std::weak_ptr<memfs::MemFs>> memfs_live_;
};

// Lets remove() wait, with a deadline, for a fuse server that ends on its own.
struct Finished {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

// The code for a backend that cannot be built: what the caller can change, or the host's fault.
ErrorCode backend_error_code(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ELOOP:
      return ErrorCode::invalid_request;
    case 0:
    case EINVAL:
    case EOPNOTSUPP:
    case EACCES:
    case EPERM:
      return ErrorCode::invalid_config;
    default:
      return ErrorCode::internal;
  }
}

}  // namespace

struct MountManager::Impl {
  struct Mount {
    enum class State { starting, active, removing };
    State state = State::starting;
    MountInfo info;
    std::shared_ptr<Stats> stats = std::make_shared<Stats>();
    std::shared_ptr<BackendSource> source;
    std::shared_ptr<passthrough::Quota> quota;
    // vhost-user
    std::unique_ptr<vhost_user::VhostUserServer> vhost;
    // fuse (the server refers to the session; it is destroyed first)
    std::unique_ptr<Session> session;
    fuse_dev::FuseMount fuse_mount;
    std::unique_ptr<fuse_dev::FuseDevServer> fuse_server;
    std::shared_ptr<Finished> finished;
  };

  Impl(VolumeStore& s, io::IoThreads& t, std::string dir)
      : store(s), threads(t), runtime_dir(std::move(dir)) {}

  VolumeStore& store;
  io::IoThreads& threads;
  const std::string runtime_dir;

  mutable std::mutex mu;  // guards `mounts` and every Mount's state and info; never held while
                          // a server starts or stops, nor while calling the store
  std::map<std::string, std::shared_ptr<Mount>, std::less<>> mounts;

  // Under mu: the info with what changes while it runs.
  static MountInfo live_info(const Mount& m) {
    MountInfo info = m.info;
    if (m.vhost) {
      info.connections = m.vhost->totals().connections;
      info.connected = m.source && m.source->live() > 0;
    } else if (m.fuse_server) {
      info.connections = 1;
      info.connected = m.fuse_server->stop_reason() == fuse_dev::FuseDevServer::StopReason::running;
    }
    return info;
  }

  static MountStats stats_of(const Mount& m) {
    MountStats out;
    out.requests = m.stats->snapshot();
    if (m.vhost) {
      const auto totals = m.vhost->totals();
      out.connections = totals.connections;
      out.bad_chains = totals.bad_chains;
    } else if (m.fuse_server) {
      out.connections = 1;
    }
    if (m.quota) {
      // A volume without a quota holds an unlimited one: its use is real, its limit is none.
      if (m.quota->limit() != std::numeric_limits<uint64_t>::max()) {
        out.quota_limit_bytes = m.quota->limit();
      }
      out.quota_used_bytes = m.quota->used();
    } else if (m.info.spec.source == SourceKind::tmpfs && m.source) {
      out.quota_limit_bytes = m.info.spec.size_bytes;
      out.quota_used_bytes = m.source->memfs_used();
    }
    return out;
  }

  // The named volume of `spec` per its mode; created_volume: this call made it.
  Outcome<VolumeInfo> find_or_create(const MountSpec& spec, bool& created_volume);
  Outcome<Done> resolve(Mount& m, bool& created_volume, passthrough::PassthroughConfig& pt,
                        memfs::MemFsConfig& mem);
  Outcome<Done> start(Mount& m);
  static void stop(Mount& m);
  void forget(const std::string& id) {
    std::lock_guard lock(mu);
    mounts.erase(id);
  }
};

Outcome<VolumeInfo> MountManager::Impl::find_or_create(const MountSpec& spec,
                                                       bool& created_volume) {
  // A concurrent create of the same name (another mount, the API) makes ours fail with
  // volume_already_exists while its volume is not visible yet (the store finishes it first):
  // ensure-exists then looks again until it is there, or gone (that create failed: try ours).
  const auto deadline = std::chrono::steady_clock::now() + ensure_exists_patience;
  for (;;) {
    Outcome<VolumeInfo> found = store.locate(spec.volume);
    if (found) {
      if (spec.mode == NamedMode::create) {
        return fail(ErrorCode::volume_already_exists,
                    "volume \"" + spec.volume +
                        "\" already exists: mode create needs a new name (use existing or "
                        "ensure-exists to mount this one)");
      }
      if (spec.mode == NamedMode::ensure_exists) {
        if (auto r = check_ensure_exists(spec, *found); !r) return r.error();
      }
      return found;
    }
    if (found.error().code != ErrorCode::volume_not_found) return found.error();
    if (spec.mode == NamedMode::existing) {
      return fail(ErrorCode::volume_not_found,
                  "volume \"" + spec.volume +
                      "\" does not exist: create it first, or mount it with mode "
                      "ensure-exists or create");
    }
    CreateVolume request;
    request.name = spec.volume;
    request.kind = spec.create_kind;
    request.quota_bytes = spec.create_quota_bytes;
    request.labels = spec.create_labels;
    Outcome<VolumeInfo> made = store.create(request);
    if (made) {
      created_volume = true;
      return made;
    }
    if (made.error().code != ErrorCode::volume_already_exists ||
        spec.mode != NamedMode::ensure_exists) {
      return made.error();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return fail(ErrorCode::internal, "volume \"" + spec.volume +
                                           "\" is being created by someone else and did not "
                                           "become ready in time; try again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Outcome<Done> MountManager::Impl::resolve(Mount& m, bool& created_volume,
                                          passthrough::PassthroughConfig& pt,
                                          memfs::MemFsConfig& mem) {
  MountSpec& spec = m.info.spec;
  pt.stat_virtualization = spec.stat_virtualization;
  pt.host_permissions = spec.host_permissions;
  pt.readonly = spec.readonly;
  pt.cache = spec.cache;

  switch (spec.source) {
    case SourceKind::bind:
      pt.root = spec.bind_path;
      if (spec.quota_bytes) {
        // The mount's own cap, shared by its connections and counted once.
        m.quota = std::make_shared<passthrough::Quota>(*spec.quota_bytes);
        pt.shared_quota = m.quota;
      }
      return Done{};
    case SourceKind::tmpfs:
      mem.capacity_bytes = spec.size_bytes;
      mem.cache = spec.cache;
      mem.root_uid = ::getuid();
      mem.root_gid = ::getgid();
      // Shared scratch directories are world-writable and sticky, as a guest's own tmpfs there.
      if (spec.guest_path == "/tmp" || spec.guest_path == "/var/tmp") mem.root_mode = 01777;
      return Done{};
    case SourceKind::disk:
      return fail(ErrorCode::unsupported, "disk mounts are not served yet");
    case SourceKind::named:
      break;
  }

  Outcome<VolumeInfo> found = find_or_create(spec, created_volume);
  if (!found) return found.error();
  const VolumeInfo& volume = *found;
  if (volume.kind != VolumeKind::dir) {
    return fail(ErrorCode::unsupported, "volume \"" + volume.name +
                                            "\" is a disk volume; disk volumes cannot be "
                                            "mounted yet");
  }
  m.info.volume_id = volume.id;
  pt.root = volume.path;
  m.quota = store.quota(volume.name);
  pt.shared_quota = m.quota;
  return Done{};
}

Outcome<Done> MountManager::Impl::start(Mount& m) {
  const MountSpec& spec = m.info.spec;
  std::string error;
  std::shared_ptr<Filesystem> first = m.source->make(error);
  if (!first) {
    return fail(backend_error_code(m.source->last_errno()),
                std::string(to_string(spec.source)) + " mount: " + error);
  }
  const std::string name = "mount " + m.info.id;

  if (spec.transport == TransportKind::vhost_user) {
    // The first connection gets the backend built above; later ones a fresh one each.
    struct Spare {
      std::mutex mu;
      std::shared_ptr<Filesystem> fs;
    };
    auto spare = std::make_shared<Spare>();
    spare->fs = std::move(first);
    std::shared_ptr<BackendSource> source = m.source;
    auto factory = [source, spare](std::string& err) -> std::shared_ptr<Filesystem> {
      std::shared_ptr<Filesystem> fs;
      {
        std::lock_guard lock(spare->mu);
        fs = std::move(spare->fs);
      }
      if (!fs) fs = source->make(err);
      if (!fs) return nullptr;
      return source->hand_out(std::move(fs));
    };
    vhost_user::DeviceOptions options;
    options.request_queues = spec.queues;
    options.session.stats = m.stats;
    options.session.name = name;
    auto server = std::make_unique<vhost_user::VhostUserServer>(threads, spec.socket_path,
                                                                std::move(factory), options);
    try {
      server->start();
    } catch (const std::system_error& e) {
      const int err = e.code().value();
      return fail(err == EEXIST || err == EADDRINUSE || err == ENOENT || err == EACCES
                      ? ErrorCode::invalid_config
                      : ErrorCode::internal,
                  "cannot serve socket_path " + spec.socket_path + ": " + e.what());
    }
    m.vhost = std::move(server);
    return Done{};
  }

  SessionOptions session_options;
  session_options.stats = m.stats;
  session_options.name = spec.mountpoint;
  auto session = std::make_unique<Session>(m.source->hand_out(std::move(first)), session_options);
  fuse_dev::MountConfig config;
  config.mountpoint = spec.mountpoint;
  config.nosuid = true;
  config.nodev = true;
  config.noexec = spec.noexec;
  config.readonly = spec.readonly;
  fuse_dev::FuseMount mount;
  try {
    mount = fuse_dev::FuseMount::mount(config);
  } catch (const fuse_dev::MountError& e) {
    const int err = e.error();
    return fail(err == EINVAL || err == ENOENT || err == ENOTDIR || err == EPERM || err == EACCES
                    ? ErrorCode::invalid_config
                    : ErrorCode::internal,
                std::string("cannot mount on ") + spec.mountpoint + ": " + e.what());
  }
  auto finished = std::make_shared<Finished>();
  auto server = std::make_unique<fuse_dev::FuseDevServer>(*session, mount.take_fd(),
                                                          fuse_dev::FuseDevServerOptions{});
  server->on_finished([finished] {
    std::lock_guard lock(finished->mu);
    finished->done = true;
    finished->cv.notify_all();
  });
  try {
    server->start();
  } catch (const std::exception& e) {
    mount.unmount();
    return fail(ErrorCode::internal,
                std::string("cannot serve ") + spec.mountpoint + ": " + e.what());
  }
  m.session = std::move(session);
  m.fuse_mount = std::move(mount);
  m.fuse_server = std::move(server);
  m.finished = std::move(finished);
  return Done{};
}

void MountManager::Impl::stop(Mount& m) {
  if (m.vhost) {
    m.vhost->stop();  // ends every connection and unlinks the socket
    m.vhost.reset();
    ::unlink(m.info.spec.socket_path.c_str());  // in case start() left it (ENOENT is fine)
  }
  if (m.fuse_server) {
    using Reason = fuse_dev::FuseDevServer::StopReason;
    if (m.fuse_server->stop_reason() == Reason::running) {
      // Detach: an idle mount ends at once (the server reads ENODEV). Open files keep a busy
      // one alive; after the grace period stopping the server closes our /dev/fuse fds, which
      // aborts the connection, so those files fail with ENOTCONN instead of hanging.
      if (const int e = m.fuse_mount.unmount(); e != 0) {
        SANDFS_LOG(warn) << "mount " << m.info.id << ": unmount of " << m.info.spec.mountpoint
                         << " failed: " << std::strerror(e) << "; stopping its server";
      }
      std::unique_lock lock(m.finished->mu);
      if (!m.finished->cv.wait_for(lock, fuse_detach_grace, [&] { return m.finished->done; })) {
        lock.unlock();
        SANDFS_LOG(info) << "mount " << m.info.id << ": " << m.info.spec.mountpoint
                         << " is busy; detached, closing its connection";
        m.fuse_server->stop();
      }
    }
    m.fuse_server->wait();
    if (m.fuse_server->stop_reason() == Reason::unmounted) {
      m.fuse_mount.forget();  // the kernel did it; something else may be mounted there now
    } else {
      m.fuse_mount.unmount();
    }
    m.fuse_server.reset();
    m.session.reset();
  }
}

MountManager::MountManager(VolumeStore& store, io::IoThreads& threads, std::string runtime_dir)
    : impl_(std::make_unique<Impl>(store, threads, std::move(runtime_dir))) {
  store.set_in_use_check([this](std::string_view name) { return user_of(name); });
}

MountManager::~MountManager() {
  // First, so that the store never calls into a manager being torn down.
  impl_->store.set_in_use_check(nullptr);
  std::vector<std::shared_ptr<Impl::Mount>> all;
  {
    std::lock_guard lock(impl_->mu);
    for (auto& [id, m] : impl_->mounts) {
      m->state = Impl::Mount::State::removing;
      all.push_back(m);
    }
  }
  for (auto& m : all)
    Impl::stop(*m);
  std::lock_guard lock(impl_->mu);
  impl_->mounts.clear();
}

Outcome<MountInfo> MountManager::create(MountSpec spec) {
  if (auto r = validate_mount_spec(spec); !r) return r.error();
  Outcome<std::string> id = new_uuid();
  if (!id) return id.error();

  if (spec.transport == TransportKind::vhost_user && spec.socket_path.empty()) {
    spec.socket_path = impl_->runtime_dir + "/" + *id + ".sock";
    if (spec.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
      return fail(ErrorCode::invalid_config,
                  "the default socket path " + spec.socket_path +
                      " is too long for a Unix socket: give socket_path explicitly");
    }
  }
  if (spec.transport == TransportKind::fuse) {
    spec.nosuid = true;  // always, on the host (see the top of this file)
    spec.nodev = true;
  }

  auto m = std::make_shared<Impl::Mount>();
  m->info.id = *id;
  m->info.spec = std::move(spec);
  m->info.created_at_ms = now_ms();
  const MountSpec& s = m->info.spec;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [other_id, other] : impl_->mounts) {
      const MountSpec& o = other->info.spec;
      if (s.transport == TransportKind::vhost_user && o.transport == TransportKind::vhost_user &&
          o.socket_path == s.socket_path) {
        return fail(ErrorCode::invalid_config,
                    "socket_path " + s.socket_path + " is already served by mount " + other_id);
      }
      if (s.transport == TransportKind::fuse && o.transport == TransportKind::fuse &&
          o.mountpoint == s.mountpoint) {
        return fail(ErrorCode::invalid_config,
                    "mountpoint " + s.mountpoint + " is already used by mount " + other_id);
      }
    }
    impl_->mounts.emplace(m->info.id, m);
  }

  bool created_volume = false;
  auto undo = [&](Error error) -> Outcome<MountInfo> {
    impl_->forget(m->info.id);
    if (created_volume) {
      // Only what this create made; a volume that existed before is never touched.
      if (auto r = impl_->store.remove(s.volume); !r) {
        SANDFS_LOG(warn) << "mount " << m->info.id << ": cannot remove volume " << s.volume
                         << " created for it: " << r.error().message;
      }
    }
    return error;
  };

  passthrough::PassthroughConfig pt;
  memfs::MemFsConfig mem;
  if (auto r = impl_->resolve(*m, created_volume, pt, mem); !r) return undo(r.error());
  m->source = std::make_shared<BackendSource>(s.source, std::move(pt), mem);
  if (auto r = impl_->start(*m); !r) {
    Impl::stop(*m);
    return undo(r.error());
  }

  std::lock_guard lock(impl_->mu);
  m->state = Impl::Mount::State::active;
  SANDFS_LOG(info) << "mount " << m->info.id << " of sandbox " << s.sandbox_id << ": "
                   << to_string(s.source)
                   << (s.source == SourceKind::named  ? " " + s.volume
                       : s.source == SourceKind::bind ? " " + s.bind_path
                                                      : std::string())
                   << " on " << to_string(s.transport) << " "
                   << (s.transport == TransportKind::fuse ? s.mountpoint : s.socket_path);
  return Impl::live_info(*m);
}

Outcome<MountInfo> MountManager::get(std::string_view id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->mounts.find(id);
  if (it == impl_->mounts.end() || it->second->state != Impl::Mount::State::active) {
    return fail(ErrorCode::mount_not_found, "no mount with id \"" + std::string(id) + "\"");
  }
  return Impl::live_info(*it->second);
}

std::vector<MountInfo> MountManager::list(std::string_view sandbox_id) const {
  std::vector<MountInfo> out;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, m] : impl_->mounts) {
      if (m->state != Impl::Mount::State::active) continue;
      if (!sandbox_id.empty() && m->info.spec.sandbox_id != sandbox_id) continue;
      out.push_back(Impl::live_info(*m));
    }
  }
  std::sort(out.begin(), out.end(), [](const MountInfo& a, const MountInfo& b) {
    return a.created_at_ms != b.created_at_ms ? a.created_at_ms < b.created_at_ms : a.id < b.id;
  });
  return out;
}

Outcome<MountStats> MountManager::stats(std::string_view id) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->mounts.find(id);
  if (it == impl_->mounts.end() || it->second->state != Impl::Mount::State::active) {
    return fail(ErrorCode::mount_not_found, "no mount with id \"" + std::string(id) + "\"");
  }
  return Impl::stats_of(*it->second);
}

Outcome<Done> MountManager::remove(std::string_view id) {
  std::shared_ptr<Impl::Mount> m;
  {
    std::lock_guard lock(impl_->mu);
    auto it = impl_->mounts.find(id);
    if (it == impl_->mounts.end() || it->second->state != Impl::Mount::State::active) {
      return fail(ErrorCode::mount_not_found, "no mount with id \"" + std::string(id) + "\"");
    }
    m = it->second;
    m->state = Impl::Mount::State::removing;
  }
  Impl::stop(*m);
  impl_->forget(m->info.id);
  SANDFS_LOG(info) << "mount " << m->info.id << " of sandbox " << m->info.spec.sandbox_id
                   << " removed";
  return Done{};
}

std::optional<std::string> MountManager::user_of(std::string_view volume_name) const {
  std::lock_guard lock(impl_->mu);
  // Mounts starting or stopping count too: their backends are (or may be) in the directory.
  const Impl::Mount* first = nullptr;
  for (const auto& [id, m] : impl_->mounts) {
    if (m->info.spec.source != SourceKind::named || m->info.spec.volume != volume_name) continue;
    if (!first || m->info.created_at_ms < first->info.created_at_ms) first = m.get();
  }
  if (!first) return std::nullopt;
  return "mount " + first->info.id + " of sandbox " + first->info.spec.sandbox_id;
}

std::vector<std::pair<MountInfo, MountStats>> MountManager::all_stats() const {
  std::vector<std::pair<MountInfo, MountStats>> out;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, m] : impl_->mounts) {
      if (m->state != Impl::Mount::State::active) continue;
      out.emplace_back(Impl::live_info(*m), Impl::stats_of(*m));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.first.created_at_ms != b.first.created_at_ms
               ? a.first.created_at_ms < b.first.created_at_ms
               : a.first.id < b.first.id;
  });
  return out;
}

}  // namespace sandfs::volumes
