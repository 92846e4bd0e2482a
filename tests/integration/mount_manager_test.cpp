// MountManager end to end: a real VolumeStore on a temp data dir, mounts through the host kernel
// (/dev/fuse) and through vhost-user driven by the guest simulator (tests/support).
//
// What is checked: bytes written through a mount land in the volume's host directory; a
// vhost-user mount's Stats count the requests of every connection; two mounts of one volume
// share its quota; read-only binds say EROFS; tmpfs capacity says ENOSPC; ensure-exists refuses
// a volume that differs; a failed create leaves no volume behind; remove detaches a busy fuse
// mount; an unmount from outside shows in the mount's state; a mounted volume cannot be removed.
//
// Needs root and /dev/fuse; exits 77 (skipped) otherwise. Temp dirs are /tmp/sandfs-mm-*.
#define CATCH_CONFIG_RUNNER
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "core/io/io_threads.hpp"
#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "support/vhost_user_frontend.hpp"
#include "sys_checks.hpp"
#include "volumes/mount_manager.hpp"
#include "volumes/volume_store.hpp"

using namespace sandfs;
using namespace sandfs::it;
using namespace sandfs::volumes;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace vh = sandfs::test::vhost;

namespace {

constexpr uint64_t kib = 1024;

// A data dir with its VolumeStore, a runtime dir, and a MountManager on two IoThreads.
class Env {
 public:
  Env() : threads_(2) {
    std::string pattern = "/tmp/sandfs-mm-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ / "run");
    auto store = VolumeStore::open(dir_ / "data");
    REQUIRE(store.ok());
    store_ = std::move(*store);
    mounts_ = std::make_unique<MountManager>(*store_, threads_, (dir_ / "run").string());
  }
  ~Env() {
    mounts_.reset();  // unmounts everything before the directories go
    threads_.stop();
    store_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  VolumeStore& store() { return *store_; }
  MountManager& mounts() { return *mounts_; }
  // A fresh empty directory under the temp dir.
  std::string dir(const std::string& name) {
    fs::create_directories(dir_ / name);
    return (dir_ / name).string();
  }

 private:
  fs::path dir_;
  io::IoThreads threads_;
  std::unique_ptr<VolumeStore> store_;
  std::unique_ptr<MountManager> mounts_;
};

MountSpec named_spec(const std::string& volume, NamedMode mode = NamedMode::existing) {
  MountSpec s;
  s.sandbox_id = "sb1";
  s.guest_path = "/data";
  s.source = SourceKind::named;
  s.volume = volume;
  s.mode = mode;
  return s;
}

MountSpec on_fuse(MountSpec s, const std::string& mountpoint) {
  s.transport = TransportKind::fuse;
  s.mountpoint = mountpoint;
  return s;
}

// A successful create; the test stops with the error's message otherwise.
MountInfo create_ok(MountManager& mm, const MountSpec& spec) {
  Outcome<MountInfo> info = mm.create(spec);
  if (!info) FAIL(code_name(info.error().code) << ": " << info.error().message);
  return *info;
}

Error create_error(MountManager& mm, const MountSpec& spec) {
  Outcome<MountInfo> info = mm.create(spec);
  REQUIRE_FALSE(info.ok());
  return info.error();
}

bool is_mountpoint(const std::string& path) {
  struct stat here {
  }, parent{};
  if (::stat(path.c_str(), &here) != 0) return false;
  if (::stat((fs::path(path) / "..").c_str(), &parent) != 0) return false;
  return here.st_dev != parent.st_dev;
}

uint64_t op_count(const Stats::Snapshot& s, uint32_t opcode) {
  for (const auto& op : s.ops) {
    if (op.opcode == opcode) return op.count;
  }
  return 0;
}

// Writes `len` bytes with one write(2); its errno or 0.
int write_once(const std::string& path, size_t len) {
  Fd fd = OPEN(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const std::string data(len, 'q');
  const ssize_t n = ::write(fd, data.data(), data.size());
  if (n < 0) return errno;
  REQUIRE(static_cast<size_t>(n) == len);
  return fd.close() == 0 ? 0 : errno;
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// A connected, FUSE-initialised simulated guest.
struct Guest {
  explicit Guest(const std::string& socket) : frontend(socket, options()), fuse(frontend) {
    frontend.handshake();
    fuse.init();
  }
  static vh::FrontendOptions options() {
    vh::FrontendOptions o;
    o.timeout = 5000ms;
    return o;
  }
  vh::Frontend frontend;
  vh::FuseGuest fuse;
};

template <class F>
bool eventually(F&& condition, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

}  // namespace

TEST_CASE("a named volume mounted through fuse stores what the kernel writes") {
  Env env;
  const std::string mnt = env.dir("mnt");
  const MountInfo info =
      create_ok(env.mounts(), on_fuse(named_spec("docs", NamedMode::create), mnt));
  CHECK(info.id.size() == 36);
  CHECK(info.connected);
  CHECK(info.spec.nosuid);  // always on a host mount
  CHECK(info.spec.nodev);
  REQUIRE(is_mountpoint(mnt));

  SYS(::mkdir((mnt + "/sub").c_str(), 0755));
  write_file(mnt + "/sub/hello.txt", "hello from the kernel");

  Outcome<VolumeInfo> volume = env.store().get("docs");
  REQUIRE(volume.ok());
  CHECK(volume->id == info.volume_id);
  CHECK(read_file(volume->path + "/sub/hello.txt") == "hello from the kernel");

  Outcome<MountStats> stats = env.mounts().stats(info.id);
  REQUIRE(stats.ok());
  CHECK(op_count(stats->requests, fuse::FUSE_MKDIR) == 1);
  CHECK(op_count(stats->requests, fuse::FUSE_CREATE) == 1);
  // The kernel may write straight to the host file (FUSE passthrough): no WRITE to count then.
  CHECK(stats->requests.bytes_written + stats->requests.passthrough_opens > 0);
  CHECK(stats->connections == 1);
  CHECK_FALSE(stats->quota_limit_bytes.has_value());

  const std::vector<MountInfo> listed = env.mounts().list("sb1");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].id == info.id);
  CHECK(env.mounts().list("other").empty());

  REQUIRE(env.mounts().remove(info.id).ok());
  CHECK_FALSE(is_mountpoint(mnt));
  CHECK(env.mounts().get(info.id).error().code == ErrorCode::mount_not_found);
  CHECK(env.mounts().remove(info.id).error().code == ErrorCode::mount_not_found);
  CHECK(read_file(volume->path + "/sub/hello.txt") == "hello from the kernel");
}

TEST_CASE("a vhost-user mount serves guests and counts every connection's requests") {
  Env env;
  const MountInfo info = create_ok(env.mounts(), named_spec("shared", NamedMode::ensure_exists));
  CHECK(info.spec.socket_path.ends_with("/run/" + info.id + ".sock"));
  CHECK_FALSE(info.connected);
  {
    Guest g(info.spec.socket_path);
    CHECK(g.fuse.lookup(fuse::root_id, "note").error == ENOENT);
    auto created = g.fuse.create(fuse::root_id, "note");
    REQUIRE(created.ok());
    auto written =
        g.fuse.write(created.value.entry.nodeid, created.value.open.fh, 0, as_bytes("guest bytes"));
    REQUIRE(written.ok());
    CHECK(written.value == 11);
    CHECK(g.fuse.release(created.value.entry.nodeid, created.value.open.fh) == 0);
    CHECK(env.mounts().get(info.id)->connected);

    Outcome<MountStats> stats = env.mounts().stats(info.id);
    REQUIRE(stats.ok());
    CHECK(op_count(stats->requests, fuse::FUSE_LOOKUP) == 1);
    CHECK(op_count(stats->requests, fuse::FUSE_CREATE) == 1);
    CHECK(op_count(stats->requests, fuse::FUSE_WRITE) == 1);
    CHECK(stats->requests.bytes_written == 11);
    CHECK(stats->connections == 1);
    CHECK(stats->bad_chains == 0);
  }
  Outcome<VolumeInfo> volume = env.store().get("shared");
  REQUIRE(volume.ok());
  CHECK(read_file(volume->path + "/note") == "guest bytes");
  CHECK(eventually([&] { return !env.mounts().get(info.id)->connected; }));

  {
    // A reconnecting VMM: a new Session, the same Stats.
    Guest g(info.spec.socket_path);
    CHECK(g.fuse.lookup(fuse::root_id, "note").ok());
  }
  Outcome<MountStats> stats = env.mounts().stats(info.id);
  REQUIRE(stats.ok());
  CHECK(op_count(stats->requests, fuse::FUSE_LOOKUP) == 2);
  CHECK(op_count(stats->requests, fuse::FUSE_INIT) == 2);
  CHECK(stats->connections == 2);

  const std::string socket = info.spec.socket_path;
  REQUIRE(env.mounts().remove(info.id).ok());
  CHECK_FALSE(fs::exists(socket));
}

TEST_CASE("two mounts of one volume share its quota") {
  Env env;
  CreateVolume request;
  request.name = "capped";
  request.quota_bytes = 1024 * kib;
  REQUIRE(env.store().create(request).ok());
  const std::string a = env.dir("a"), b = env.dir("b");
  const MountInfo ma = create_ok(env.mounts(), on_fuse(named_spec("capped"), a));
  const MountInfo mb = create_ok(env.mounts(), on_fuse(named_spec("capped"), b));

  CHECK(write_once(a + "/one", 600 * kib) == 0);
  // Alone, mount b would have room for this; together the volume does not.
  CHECK(errno_name(write_once(b + "/two", 600 * kib)) == "ENOSPC");
  CHECK(write_once(b + "/small", 300 * kib) == 0);
  CHECK(errno_name(write_once(a + "/three", 200 * kib)) == "ENOSPC");

  Outcome<MountStats> sa = env.mounts().stats(ma.id), sb = env.mounts().stats(mb.id);
  REQUIRE(sa.ok());
  REQUIRE(sb.ok());
  CHECK(sa->quota_limit_bytes == 1024 * kib);
  CHECK(sa->quota_used_bytes == 900 * kib);
  CHECK(sb->quota_used_bytes == 900 * kib);
  CHECK(std::count_if(sb->requests.errors_by_errno.begin(), sb->requests.errors_by_errno.end(),
                      [](const auto& e) { return e.first == ENOSPC; }) == 1);

  // A guest on a vhost-user mount of the same volume meets the same cap.
  const MountInfo mc = create_ok(env.mounts(), named_spec("capped"));
  {
    Guest g(mc.spec.socket_path);
    auto created = g.fuse.create(fuse::root_id, "from-guest");
    REQUIRE(created.ok());
    const std::string big(200 * kib, 'g');
    CHECK(g.fuse.write(created.value.entry.nodeid, created.value.open.fh, 0, as_bytes(big)).error ==
          ENOSPC);
    const std::string small(100 * kib, 'g');
    CHECK(g.fuse.write(created.value.entry.nodeid, created.value.open.fh, 0, as_bytes(small)).ok());
    CHECK(g.fuse.release(created.value.entry.nodeid, created.value.open.fh) == 0);
  }
  CHECK(env.mounts().stats(mc.id)->quota_used_bytes == 1000 * kib);

  // Freeing space through one mount makes room in the others.
  SYS(::unlink((a + "/one").c_str()));
  CHECK(write_once(b + "/two", 600 * kib) == 0);
}

TEST_CASE("a read-only bind mount refuses writes with EROFS") {
  Env env;
  const std::string host = env.dir("host");
  write_file(host + "/kept", "original");

  MountSpec s;
  s.sandbox_id = "sb-ro";
  s.source = SourceKind::bind;
  s.bind_path = host;
  s.readonly = true;
  const std::string mnt = env.dir("ro");
  create_ok(env.mounts(), on_fuse(s, mnt));
  CHECK(read_file(mnt + "/kept") == "original");
  CHECK_ERRNO(EROFS, ::open((mnt + "/kept").c_str(), O_WRONLY));
  CHECK_ERRNO(EROFS, ::mkdir((mnt + "/new").c_str(), 0755));

  // Over vhost-user the guest may ignore its ro mount option: the backend says EROFS itself.
  const MountInfo vhost = create_ok(env.mounts(), s);
  Guest g(vhost.spec.socket_path);
  CHECK(g.fuse.create(fuse::root_id, "new").error == EROFS);
  CHECK(g.fuse.mkdir(fuse::root_id, "dir").error == EROFS);
  CHECK(read_file(host + "/kept") == "original");
  CHECK_FALSE(fs::exists(host + "/new"));
}

TEST_CASE("a tmpfs mount stops at its size with ENOSPC") {
  Env env;
  MountSpec s;
  s.sandbox_id = "sb-tmp";
  s.source = SourceKind::tmpfs;
  s.size_bytes = 256 * kib;
  const std::string mnt = env.dir("tmp");
  const MountInfo info = create_ok(env.mounts(), on_fuse(s, mnt));
  CHECK(write_once(mnt + "/fits", 128 * kib) == 0);
  // The kernel may split one write(2) into several WRITEs: keep writing until it says why not.
  Fd fd = OPEN((mnt + "/too-big").c_str(), O_WRONLY | O_CREAT, 0644);
  const std::string chunk(64 * kib, 'z');
  uint64_t stored = 0;
  int err = 0;
  while (stored <= 256 * kib) {
    const ssize_t n = ::write(fd, chunk.data(), chunk.size());
    if (n < 0) {
      err = errno;
      break;
    }
    stored += static_cast<uint64_t>(n);
  }
  CHECK(errno_name(err) == "ENOSPC");
  CHECK(stored <= 128 * kib);
  Outcome<MountStats> stats = env.mounts().stats(info.id);
  REQUIRE(stats.ok());
  CHECK(stats->quota_limit_bytes == 256 * kib);
  CHECK(stats->quota_used_bytes >= 128 * kib);
  CHECK(stats->quota_used_bytes <= 256 * kib);

  // A scratch /tmp is world-writable and sticky, as the guest's own would be.
  s.guest_path = "/tmp";
  const std::string tmp = env.dir("guest-tmp");
  create_ok(env.mounts(), on_fuse(s, tmp));
  CHECK((stat_of(tmp).st_mode & 07777) == 01777);
}

TEST_CASE("named modes check the volume that is there") {
  Env env;
  CreateVolume request;
  request.name = "team-vol";
  request.quota_bytes = 1024 * kib;
  request.labels = {{"team", "a"}};
  REQUIRE(env.store().create(request).ok());

  MountSpec s = named_spec("team-vol", NamedMode::ensure_exists);
  s.create_quota_bytes = 2048 * kib;
  Error e = create_error(env.mounts(), s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(e.message.find("with a quota of 1048576 bytes") != std::string::npos);

  s.create_quota_bytes = 1024 * kib;
  s.create_labels = {{"team", "b"}};
  e = create_error(env.mounts(), s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(e.message.find("team=\"a\"") != std::string::npos);

  s.create_labels = {{"team", "a"}};
  const MountInfo ok = create_ok(env.mounts(), s);
  CHECK(env.mounts().remove(ok.id).ok());

  CHECK(create_error(env.mounts(), named_spec("team-vol", NamedMode::create)).code ==
        ErrorCode::volume_already_exists);
  e = create_error(env.mounts(), named_spec("nobody-made-this"));
  CHECK(e.code == ErrorCode::volume_not_found);
  CHECK(e.message.find("ensure-exists") != std::string::npos);
  CHECK(env.mounts().list().empty());
}

TEST_CASE("concurrent ensure-exists mounts of a new volume share the one volume") {
  Env env;
  constexpr int n = 4;
  std::vector<Outcome<MountInfo>> results(n, Error{});
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      MountSpec s = named_spec("raced", NamedMode::ensure_exists);
      s.sandbox_id = "sb" + std::to_string(i);
      s.create_labels = {{"made-by", "race"}};
      results[static_cast<size_t>(i)] = env.mounts().create(s);
    });
  }
  for (auto& t : threads)
    t.join();
  Outcome<VolumeInfo> volume = env.store().get("raced");
  REQUIRE(volume.ok());
  for (const auto& r : results) {
    if (!r) FAIL(code_name(r.error().code) << ": " << r.error().message);
    CHECK(r->volume_id == volume->id);
  }
  CHECK(env.mounts().list().size() == n);
  for (const auto& r : results)
    CHECK(env.mounts().remove(r->id).ok());
  CHECK(env.store().remove("raced").ok());
}

TEST_CASE("a create that fails after making its volume removes the volume again") {
  Env env;
  const std::string taken = env.dir("x") + "/not-a-socket";
  write_file(taken, "a regular file");
  MountSpec s = named_spec("fresh", NamedMode::create);
  s.socket_path = taken;
  const Error e = create_error(env.mounts(), s);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(e.message.find(taken) != std::string::npos);
  CHECK(env.store().get("fresh").error().code == ErrorCode::volume_not_found);
  CHECK(env.mounts().list().empty());
}

TEST_CASE("a socket path or mountpoint serves one mount at a time") {
  Env env;
  REQUIRE(env.store().create(CreateVolume{.name = "one"}).ok());
  const MountInfo first = create_ok(env.mounts(), named_spec("one"));
  MountSpec again = named_spec("one");
  again.socket_path = first.spec.socket_path;
  const Error e = create_error(env.mounts(), again);
  CHECK(e.code == ErrorCode::invalid_config);
  CHECK(e.message.find(first.id) != std::string::npos);
}

TEST_CASE("remove detaches a busy fuse mount and returns") {
  Env env;
  MountSpec s;
  s.sandbox_id = "sb-busy";
  s.source = SourceKind::tmpfs;
  const std::string mnt = env.dir("busy");
  const MountInfo info = create_ok(env.mounts(), on_fuse(s, mnt));
  write_file(mnt + "/open", "held open");
  Fd held = OPEN((mnt + "/open").c_str(), O_RDONLY);
  Fd cwd_like = OPEN(mnt.c_str(), O_RDONLY | O_DIRECTORY);

  const auto start = std::chrono::steady_clock::now();
  REQUIRE(env.mounts().remove(info.id).ok());
  CHECK(std::chrono::steady_clock::now() - start < 10s);
  CHECK_FALSE(is_mountpoint(mnt));
  char buf[16];
  // The connection is gone: the open file fails rather than hanging.
  CHECK(::pread(held, buf, sizeof buf, 0) < 0);
  CHECK(env.mounts().get(info.id).error().code == ErrorCode::mount_not_found);
}

TEST_CASE("an unmount from outside shows in the mount's state") {
  Env env;
  MountSpec s;
  s.sandbox_id = "sb-ext";
  s.source = SourceKind::tmpfs;
  const std::string mnt = env.dir("ext");
  const MountInfo info = create_ok(env.mounts(), on_fuse(s, mnt));
  REQUIRE(info.connected);
  SYS(::umount2(mnt.c_str(), 0));
  CHECK(eventually([&] { return !env.mounts().get(info.id)->connected; }));
  REQUIRE(env.mounts().remove(info.id).ok());
  CHECK_FALSE(is_mountpoint(mnt));
}

TEST_CASE("a mounted volume cannot be removed from the store") {
  Env env;
  REQUIRE(env.store().create(CreateVolume{.name = "busy-vol"}).ok());
  const MountInfo info = create_ok(env.mounts(), named_spec("busy-vol"));
  CHECK(env.mounts().user_of("busy-vol") == "mount " + info.id + " of sandbox sb1");
  CHECK_FALSE(env.mounts().user_of("other").has_value());

  Outcome<Done> removed = env.store().remove("busy-vol");
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().code == ErrorCode::volume_in_use);
  CHECK(removed.error().message.find(info.id) != std::string::npos);

  REQUIRE(env.mounts().remove(info.id).ok());
  CHECK_FALSE(env.mounts().user_of("busy-vol").has_value());
  CHECK(env.store().remove("busy-vol").ok());
}

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with("--list")) listing = true;
  }
  if (!listing) {
    if (::geteuid() != 0) {
      std::fprintf(stderr, "SKIP: the mount manager tests need root (mount(2))\n");
      return 77;
    }
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
      std::fprintf(stderr, "SKIP: /dev/fuse is not available\n");
      return 77;
    }
  }
  log::set_level(log::Level::warn);
  if (const char* l = std::getenv("SANDFS_LOG")) {
    log::Level level;
    if (log::parse_level(l, level)) log::set_level(level);
  }
  ::umask(022);
  return Catch::Session().run(argc, argv);
}
