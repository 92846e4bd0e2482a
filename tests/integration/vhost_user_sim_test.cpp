// vhost-user-fs end to end through the guest simulator: a VhostUserServer serving MemFs runs in
// this process on IoThreads, as `sandfsd vhost-user` runs it, and simulated VMMs connect to its
// socket, negotiate like QEMU and put FUSE requests into split rings in memfd guest RAM.
//
// What is checked: the bytes and errnos a guest sees; that malformed descriptors are completed
// with 0 bytes (or dropped) and counted while the queue serves the next request; that malformed
// messages end only their own connection; that nothing leaks (fds, guest memory mappings) when
// a connection ends; that many guests at once each get their own, correct filesystem.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "backends/memfs/memfs.hpp"
#include "core/io/io_threads.hpp"
#include "core/log.hpp"
#include "support/vhost_user_frontend.hpp"
#include "transport/vhost_user/server.hpp"

namespace {

using namespace sandfs;
using namespace sandfs::fuse;
using namespace sandfs::test::vhost;
using namespace std::chrono_literals;
namespace vu = sandfs::vhost_user;

// ---- fixtures ---------------------------------------------------------------------------------

// A temp directory with one or more VhostUserServers (MemFs, a fresh one per connection) on
// shared IoThreads.
class SimServer {
 public:
  explicit SimServer(unsigned request_queues = 2, unsigned sockets = 1, unsigned threads = 2)
      : threads_(threads) {
    if (const char* level = std::getenv("SANDFS_TEST_LOG"); level != nullptr) {
      log::Level l;
      if (log::parse_level(level, l)) log::set_level(l);
    } else {
      log::set_level(log::Level::off);
    }
    char dir[] = "/tmp/sandfs-vhost-sim-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = dir;
    vu::DeviceOptions options;
    options.request_queues = request_queues;
    for (unsigned i = 0; i < sockets; ++i) {
      auto factory = [](std::string&) -> std::shared_ptr<Filesystem> {
        return memfs::make_memfs();
      };
      auto s = std::make_unique<vu::VhostUserServer>(
          threads_, dir_ + "/fs" + std::to_string(i) + ".sock", factory, options);
      s->start();
      servers_.push_back(std::move(s));
    }
  }
  ~SimServer() {
    for (auto& s : servers_)
      s->stop();
    threads_.stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  const std::string& path(unsigned i = 0) const { return servers_[i]->socket_path(); }
  vu::ServerTotals totals(unsigned i = 0) const { return servers_[i]->totals(); }
  uint64_t bad_chains() const {
    uint64_t n = 0;
    for (const auto& s : servers_)
      n += s->totals().bad_chains;
    return n;
  }

 private:
  io::IoThreads threads_;
  std::string dir_;
  std::vector<std::unique_ptr<vu::VhostUserServer>> servers_;
};

FrontendOptions quick(FrontendOptions o = {}) {
  o.timeout = 5000ms;
  return o;
}

// A connected, negotiated and FUSE-initialised guest.
struct Guest {
  explicit Guest(const std::string& path, FrontendOptions options = quick())
      : frontend(path, std::move(options)), fuse(frontend) {
    frontend.handshake();
    init = fuse.init();
  }
  Frontend frontend;
  FuseGuest fuse;
  fuse_init_out init{};
};

// The server still takes a new connection and serves it correctly.
void check_fresh_connection(const std::string& path) {
  Guest g(path);
  auto d = g.fuse.mkdir(root_id, "probe");
  REQUIRE(d.ok());
  auto a = g.fuse.getattr(d.value.nodeid);
  REQUIRE(a.ok());
  CHECK(S_ISDIR(a.value.attr.mode));
  CHECK(g.fuse.lookup(root_id, "absent").error == ENOENT);
}

std::vector<std::byte> pattern(size_t size, uint32_t seed) {
  std::vector<std::byte> out(size);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : out) {
    x = x * 1103515245u + 12345u;
    b = static_cast<std::byte>(x >> 24);
  }
  return out;
}

uint64_t checksum(std::span<const std::byte> data) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (std::byte b : data)
    h = (h ^ static_cast<uint8_t>(b)) * 1099511628211ull;
  return h;
}

template <class T>
std::span<const std::byte> bytes_of(const T& v) {
  return std::as_bytes(std::span<const T>(&v, 1));
}

// Mappings of this process whose name contains `name` (memfd guest RAM shows as /memfd:NAME).
size_t mappings_named(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  size_t n = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:" + name + " ") != std::string::npos) ++n;
  }
  return n;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A pipe whose write ends are handed to the server: when every copy of the write end is closed,
// the read end sees EOF. That is how a test sees the server close an fd it was given.
struct PipeProbe {
  PipeProbe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    read_end.reset(fds[0]);
    write_end.reset(fds[1]);
  }
  // After our own write end is closed: whether the server's copies are gone within `timeout`
  // (whatever the server wrote into the pipe meanwhile is drained).
  bool closed_everywhere(std::chrono::milliseconds timeout = 5000ms) {
    write_end.reset();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{read_end.get(), POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[512];
      const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
      if (n == 0) return true;
      if (n < 0) return false;
    }
  }
  UniqueFd read_end, write_end;
};

// ---- raw chains -------------------------------------------------------------------------------

// Writes a chain of `buffers` into free descriptors of `q` by hand (the simulator does not track
// it), publishes it and kicks. Returns its head; the descriptors stay taken (released at the end
// of the connection, which is all the tests need).
uint16_t publish_raw_chain(DriverQueue& q, std::span<const Buffer> buffers) {
  auto descs = q.take_descriptors(buffers.size());
  REQUIRE(descs);
  for (size_t i = 0; i < buffers.size(); ++i) {
    uint16_t flags = buffers[i].writable ? vu::VRING_DESC_F_WRITE : 0;
    if (i + 1 < buffers.size()) flags |= vu::VRING_DESC_F_NEXT;
    q.write_desc((*descs)[i],
                 vu::vring_desc{buffers[i].gpa, buffers[i].len, flags,
                                i + 1 < buffers.size() ? (*descs)[i + 1] : uint16_t{0}});
  }
  q.publish_raw((*descs)[0]);
  q.kick(true);
  return (*descs)[0];
}

// A GETATTR of the root laid out by hand, with `in_len` in its header (the truth by default).
std::vector<std::byte> getattr_request(uint64_t unique, std::optional<uint32_t> in_len = {}) {
  fuse_in_header h{};
  h.len = in_len.value_or(sizeof h + sizeof(fuse_getattr_in));
  h.opcode = FUSE_GETATTR;
  h.unique = unique;
  h.nodeid = root_id;
  std::vector<std::byte> out(sizeof h + sizeof(fuse_getattr_in));
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

// The queue still answers: a GETATTR of the root right after whatever came before.
void check_queue_serves(Guest& g, unsigned q) {
  const unsigned previous = g.fuse.queue();
  g.fuse.use_queue(q);
  auto a = g.fuse.getattr(root_id);
  g.fuse.use_queue(previous);
  REQUIRE(a.ok());
  CHECK(S_ISDIR(a.value.attr.mode));
}

// Publishes a malformed chain built by `build` on request queue 1 and checks what the issue asks
// for: no crash, the chain comes back with 0 bytes (or, when `completable` is false, is dropped),
// it is counted, and the very next request on the queue is served.
void expect_bad_chain(SimServer& server, Guest& g,
                      const std::function<uint16_t(DriverQueue&, GuestRam&)>& build,
                      bool completable = true) {
  DriverQueue& q = g.frontend.queue(1);
  const uint64_t bad_before = server.bad_chains();
  const uint16_t head = build(q, g.frontend.ram());
  if (completable) {
    auto len = g.frontend.wait_raw_used(1, head, 5000ms);
    REQUIRE(len);
    CHECK(*len == 0);
  }
  check_queue_serves(g, 1);
  CHECK(server.bad_chains() == bad_before + 1);
  if (!completable) CHECK(g.frontend.queue(1).raw_used().empty());
}

// ---- happy path -------------------------------------------------------------------------------

TEST_CASE("handshake negotiates what QEMU asks for", "[vhost_user_sim]") {
  SimServer server(2);
  Frontend f(server.path(), quick());
  f.handshake();
  CHECK((f.features() & vu::virtio_f_version_1) != 0);
  CHECK((f.features() & vu::virtio_ring_f_event_idx) != 0);
  CHECK((f.features() & vu::virtio_ring_f_indirect_desc) != 0);
  CHECK((f.features() & vu::vhost_user_f_protocol_features) != 0);
  CHECK(f.acks());
  CHECK(f.get_queue_num() == 3);  // high-priority queue + 2 request queues
  FuseGuest fuse(f);
  const fuse_init_out init = fuse.init();
  CHECK(init.major == 7);
  CHECK(init.minor >= 31);
  CHECK(init.max_write >= 1u << 20);
}

TEST_CASE("file operations through the rings return the right bytes and errnos",
          "[vhost_user_sim]") {
  SimServer server(2);
  Guest g(server.path());
  auto& fs = g.fuse;

  auto dir = fs.mkdir(root_id, "dir", 0750);
  REQUIRE(dir.ok());
  CHECK(S_ISDIR(dir.value.attr.mode));
  CHECK((dir.value.attr.mode & 07777) == 0750);
  CHECK(fs.mkdir(root_id, "dir").error == EEXIST);

  auto file = fs.create(dir.value.nodeid, "big", 0640);
  REQUIRE(file.ok());
  const uint64_t ino = file.value.entry.nodeid;
  const uint64_t fh = file.value.open.fh;

  // 1 MiB in one WRITE (the chain's data buffer spans 256 pages), read back in one READ and in
  // 64 KiB pieces.
  const auto data = pattern(1u << 20, 7);
  auto w = fs.write(ino, fh, 0, data);
  REQUIRE(w.ok());
  CHECK(w.value == data.size());
  auto whole = fs.read(ino, fh, 0, 1u << 20);
  REQUIRE(whole.ok());
  REQUIRE(whole.value.size() == data.size());
  CHECK(checksum(whole.value) == checksum(data));
  std::vector<std::byte> pieces;
  for (uint64_t off = 0; off < data.size(); off += 64 * 1024) {
    auto r = fs.read(ino, fh, off, 64 * 1024);
    REQUIRE(r.ok());
    pieces.insert(pieces.end(), r.value.begin(), r.value.end());
  }
  CHECK(checksum(pieces) == checksum(data));
  auto past_end = fs.read(ino, fh, data.size(), 4096);
  REQUIRE(past_end.ok());
  CHECK(past_end.value.empty());

  auto attr = fs.getattr(ino);
  REQUIRE(attr.ok());
  CHECK(attr.value.attr.size == data.size());
  CHECK(S_ISREG(attr.value.attr.mode));
  CHECK(fs.release(ino, fh) == 0);

  auto opened = fs.open(ino, 0);
  REQUIRE(opened.ok());
  auto head = fs.read(ino, opened.value.fh, 0, 16);
  REQUIRE(head.ok());
  CHECK(std::equal(head.value.begin(), head.value.end(), data.begin()));
  CHECK(fs.release(ino, opened.value.fh) == 0);

  for (int i = 0; i < 20; ++i) {
    auto c = fs.create(dir.value.nodeid, "f" + std::to_string(i));
    REQUIRE(c.ok());
    CHECK(fs.release(c.value.entry.nodeid, c.value.open.fh) == 0);
  }
  auto listing = fs.list(dir.value.nodeid);
  REQUIRE(listing.ok());
  std::vector<std::string> names;
  for (const auto& e : listing.value)
    names.push_back(e.name);
  std::sort(names.begin(), names.end());
  CHECK(names.size() == 23);  // ".", "..", big, f0..f19
  CHECK(std::count(names.begin(), names.end(), "big") == 1);
  CHECK(std::count(names.begin(), names.end(), "f19") == 1);

  auto looked = fs.lookup(dir.value.nodeid, "big");
  REQUIRE(looked.ok());
  CHECK(looked.value.nodeid == ino);
  CHECK(fs.unlink(dir.value.nodeid, "big") == 0);
  CHECK(fs.lookup(dir.value.nodeid, "big").error == ENOENT);
  CHECK(fs.unlink(dir.value.nodeid, "big") == ENOENT);
  CHECK(fs.getattr(0xdead0000).error != 0);
  CHECK(fs.lookup(root_id, "no-such-dir").error == ENOENT);
  CHECK(fs.rmdir(root_id, "dir") == ENOTEMPTY);

  // FORGET goes to the high-priority queue and has no reply; the chain still comes back.
  fs.forget(ino, 2);
  fs.forget(dir.value.nodeid, 1);
  CHECK(fs.getattr(root_id).ok());
  CHECK(server.totals().bad_chains == 0);
}

// Many requests outstanding on both request queues before any is waited for; replies are
// matched to requests by head and unique, and each carries its own request's answer.
void many_in_flight(bool indirect) {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  o.use_indirect = indirect;
  o.queue_size = 256;
  Guest g(server.path(), o);
  Frontend& f = g.frontend;

  constexpr int files = 32;
  std::vector<uint64_t> ino(files), fh(files);
  for (int i = 0; i < files; ++i) {
    auto c = g.fuse.create(root_id, "file" + std::to_string(i));
    REQUIRE(c.ok());
    ino[i] = c.value.entry.nodeid;
    fh[i] = c.value.open.fh;
  }
  // Round 1: a WRITE per file and a LOOKUP of a missing name, alternating queues.
  std::vector<Ticket> writes, misses;
  std::vector<std::vector<std::byte>> data;
  for (int i = 0; i < files; ++i) {
    data.push_back(pattern(8192 + 512 * i, i));
    fuse_write_in in{};
    in.fh = fh[i];
    in.size = static_cast<uint32_t>(data[i].size());
    const unsigned q = 1 + i % 2;
    writes.push_back(
        f.submit(q, FUSE_WRITE, ino[i], FuseGuest::arg(in), sizeof(fuse_write_out), data[i]));
    misses.push_back(f.submit(3 - q, FUSE_LOOKUP, root_id,
                              FuseGuest::name_arg("missing" + std::to_string(i)),
                              sizeof(fuse_entry_out)));
  }
  // Waited for in reverse order: completions that arrive for others are kept for them.
  for (int i = files - 1; i >= 0; --i) {
    FuseReply r = f.wait(misses[i]);
    // ENOENT, or the negative entry (node id 0) that means the same.
    CHECK((r.error() == ENOENT || (r.error() == 0 && r.as<fuse_entry_out>().nodeid == 0)));
    FuseReply w = f.wait(writes[i]);
    REQUIRE(w.error() == 0);
    CHECK(w.as<fuse_write_out>().size == data[i].size());
  }
  // Round 2: READ and GETATTR of every file at once.
  std::vector<Ticket> reads, attrs;
  for (int i = 0; i < files; ++i) {
    fuse_read_in in{};
    in.fh = fh[i];
    in.size = 64 * 1024;
    reads.push_back(f.submit(1 + i % 2, FUSE_READ, ino[i], FuseGuest::arg(in), 64 * 1024));
    attrs.push_back(f.submit(2 - i % 2, FUSE_GETATTR, ino[i], FuseGuest::arg(fuse_getattr_in{}),
                             sizeof(fuse_attr_out)));
  }
  for (int i = 0; i < files; ++i) {
    FuseReply r = f.wait(reads[i]);
    REQUIRE(r.error() == 0);
    CHECK(checksum(r.body) == checksum(data[i]));
    FuseReply a = f.wait(attrs[i]);
    REQUIRE(a.error() == 0);
    CHECK(a.as<fuse_attr_out>().attr.size == data[i].size());
  }
  CHECK(f.pending() == 0);
  CHECK(server.totals().bad_chains == 0);
}

TEST_CASE("many requests in flight on two request queues", "[vhost_user_sim]") {
  many_in_flight(false);
}

TEST_CASE("many requests in flight as indirect chains", "[vhost_user_sim]") {
  many_in_flight(true);
}

TEST_CASE("without EVENT_IDX and REPLY_ACK every kick and interrupt is plain", "[vhost_user_sim]") {
  SimServer server(1);
  FrontendOptions o = quick();
  o.request_queues = 1;
  o.event_idx = false;
  o.reply_ack = false;
  o.indirect_desc = false;
  Guest g(server.path(), o);
  CHECK((g.frontend.features() & vu::virtio_ring_f_event_idx) == 0);
  CHECK_FALSE(g.frontend.acks());
  auto c = g.fuse.create(root_id, "plain");
  REQUIRE(c.ok());
  const auto data = pattern(200000, 3);
  REQUIRE(g.fuse.write(c.value.entry.nodeid, c.value.open.fh, 0, data).ok());
  auto r = g.fuse.read(c.value.entry.nodeid, c.value.open.fh, 0, 300000);
  REQUIRE(r.ok());
  CHECK(checksum(r.value) == checksum(data));
  std::vector<Ticket> t;
  for (int i = 0; i < 40; ++i)
    t.push_back(g.frontend.submit(1, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}),
                                  sizeof(fuse_attr_out)));
  for (auto& ticket : t)
    CHECK(g.frontend.wait(ticket).error() == 0);
}

TEST_CASE("GET_VRING_BASE stops a ring and SET_VRING_BASE resumes it", "[vhost_user_sim]") {
  SimServer server(1);
  FrontendOptions o = quick();
  o.request_queues = 1;
  Guest g(server.path(), o);
  for (int i = 0; i < 5; ++i)
    REQUIRE(g.fuse.getattr(root_id).ok());
  const uint16_t offered = g.frontend.queue(1).avail_idx();
  CHECK(g.frontend.get_vring_base(1) == offered);
  // Stopped: a request waits in the ring ...
  Ticket t = g.frontend.submit(1, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}),
                               sizeof(fuse_attr_out));
  CHECK_FALSE(g.frontend.try_wait(t, 200ms));
  // ... until the ring is set up again from where it stopped, as QEMU does when a VM resumes.
  g.frontend.start_queue(1, offered);
  auto r = g.frontend.try_wait(t, 5000ms);
  REQUIRE(r);
  CHECK(r->error() == 0);
  CHECK(g.fuse.getattr(root_id).ok());
}

TEST_CASE("a new memory table mid-session restarts the rings without losing requests",
          "[vhost_user_sim]") {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  Guest g(server.path(), o);
  std::vector<Ticket> tickets;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 24; ++i) {
      tickets.push_back(g.frontend.submit(1 + i % 2, FUSE_GETATTR, root_id,
                                          FuseGuest::arg(fuse_getattr_in{}),
                                          sizeof(fuse_attr_out)));
    }
    g.frontend.set_mem_table();  // what QEMU sends after memory hotplug: the same RAM again
  }
  for (auto& t : tickets)
    CHECK(g.frontend.wait(t).error() == 0);
  check_queue_serves(g, 1);
  check_queue_serves(g, 2);
}

TEST_CASE("RESET_OWNER stops the rings and a new setup on the same connection works",
          "[vhost_user_sim]") {
  SimServer server(1);
  FrontendOptions o = quick();
  o.request_queues = 1;
  Guest g(server.path(), o);
  auto c = g.fuse.create(root_id, "before-reset");
  REQUIRE(c.ok());
  const uint16_t offered = g.frontend.queue(1).avail_idx();
  const uint16_t hiprio = g.frontend.queue(0).avail_idx();
  g.frontend.reset_owner();
  g.frontend.set_owner();
  g.frontend.set_features(g.frontend.features());
  g.frontend.set_mem_table();
  g.frontend.start_queue(0, hiprio);
  g.frontend.start_queue(1, offered);
  // Same connection, same Session: the file is still there.
  auto l = g.fuse.lookup(root_id, "before-reset");
  REQUIRE(l.ok());
  CHECK(l.value.nodeid == c.value.entry.nodeid);
}

TEST_CASE("the same head offered twice is served twice", "[vhost_user_sim][hostile]") {
  SimServer server(1);
  Guest g(server.path());
  DriverQueue& q = g.frontend.queue(1);
  GuestRam& ram = g.frontend.ram();
  const uint64_t in = ram.alloc(64), out = ram.alloc(256);
  ram.write(in, getattr_request(9301));
  const uint16_t head =
      publish_raw_chain(q, std::vector<Buffer>{{in, 56, false}, {out, 256, true}});
  q.publish_raw(head);
  q.kick(true);
  for (int i = 0; i < 2; ++i) {
    auto used = g.frontend.wait_raw_used(1, head, 5000ms);
    REQUIRE(used);
    CHECK(*used == sizeof(fuse_out_header) + sizeof(fuse_attr_out));
  }
  check_queue_serves(g, 1);
}

// ---- connections ------------------------------------------------------------------------------

TEST_CASE("a reconnecting frontend gets a fresh filesystem on the same socket",
          "[vhost_user_sim]") {
  SimServer server(1);
  FrontendOptions o = quick();
  o.request_queues = 1;
  o.name = "sandfs-sim-reconnect";
  for (int round = 0; round < 5; ++round) {
    Guest g(server.path(), o);
    CHECK(g.fuse.lookup(root_id, "kept").error == ENOENT);  // fresh MemFs each time
    auto c = g.fuse.create(root_id, "kept");
    REQUIRE(c.ok());
    REQUIRE(g.fuse.write(c.value.entry.nodeid, c.value.open.fh, 0, pattern(4096, round)).ok());
    for (int i = 0; i < 16; ++i) {
      g.frontend.submit(1, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}),
                        sizeof(fuse_attr_out));
    }
    if (round % 2 == 0) {
      g.frontend.disconnect();  // abruptly, with requests in flight
    } else {
      // As QEMU stops a VM: every ring stopped (after its requests) and its base reported.
      const std::vector<uint32_t> bases = g.frontend.shutdown();
      REQUIRE(bases.size() == 2);
      CHECK(bases[1] == g.frontend.queue(1).avail_idx());
      CHECK(bases[0] == g.frontend.queue(0).avail_idx());
    }
  }
  CHECK(eventually([&] { return server.totals().connections == 5; }));
  check_fresh_connection(server.path());
}

TEST_CASE("a disconnect releases the guest memory and the ring fds", "[vhost_user_sim]") {
  SimServer server(1);
  const std::string name = "sandfs-sim-leak-" + std::to_string(::getpid());
  FrontendOptions o = quick();
  o.request_queues = 1;
  o.name = name;
  // Pipes as the kick, call and err "eventfds" of the rings: EOF on a read end shows that the
  // server let go of its copy.
  std::vector<PipeProbe> probes(3);
  {
    Guest g(server.path(), o);
    // The server mapped both regions too.
    CHECK(eventually([&] { return mappings_named(name) == 4; }));
    REQUIRE(g.fuse.getattr(root_id).ok());
    const vu::Request requests[3] = {vu::Request::set_vring_call, vu::Request::set_vring_err,
                                     vu::Request::set_vring_kick};
    for (int i = 0; i < 3; ++i) {
      const uint64_t index = i == 1 ? 0 : 1;
      const int fd = probes[i].write_end.get();
      CHECK(g.frontend.send_with_ack(requests[i], bytes_of(index), std::span(&fd, 1)) == 0);
    }
    g.frontend.disconnect();
    CHECK(eventually([&] { return mappings_named(name) == 2; }));  // only the frontend's
  }
  CHECK(mappings_named(name) == 0);
  for (auto& p : probes)
    CHECK(p.closed_everywhere());
  check_fresh_connection(server.path());
}

// Regression: a connection accepted while stop() ran could register after stop() had walked
// the live connections; stop() then neither closed it nor saw it end, and returned only after
// its 30 s grace with that connection still running. About one stop in twenty hit it here.
TEST_CASE("stop ends connections accepted while it runs", "[vhost_user_sim]") {
  for (int i = 0; i < 60; ++i) {
    std::vector<std::unique_ptr<Frontend>> frontends;
    auto server = std::make_unique<SimServer>(1);
    for (int k = 0; k < 6; ++k)
      frontends.push_back(std::make_unique<Frontend>(server->path(), quick()));
    const auto start = std::chrono::steady_clock::now();
    server.reset();  // stops while the frontends stay connected
    const auto took = std::chrono::steady_clock::now() - start;
    INFO("iteration " << i);
    REQUIRE(took < 5s);
    for (auto& f : frontends)
      CHECK(f->wait_closed(1000ms));
  }
}

// `guests` simulated VMs, each on its own connection and thread, spread over `sockets` sockets
// of one server: all connected and initialised before any starts its workload, and all still
// connected until every one has finished it.
void many_guests(unsigned guests, unsigned sockets) {
  // About 16 fds per guest between the frontend and the server.
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  SimServer server(2, sockets);
  std::atomic<unsigned> ok{0}, connected{0}, finished{0};
  // Everyone arrives (a failed guest too, so that nobody waits for it), or 30 s pass.
  auto all_at = [&](std::atomic<unsigned>& count) {
    ++count;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (count.load() < guests && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
  };
  std::vector<std::string> failures(guests);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < guests; ++i) {
    threads.emplace_back([&, i] {
      bool arrived = false, done = false;
      try {
        FrontendOptions o = quick(FrontendOptions{});
        o.regions = {{0x0, 1u << 20}, {0x40000000, 1u << 20}};
        o.queue_size = 64;
        o.request_queues = 1 + i % 2;
        o.timeout = 30000ms;
        o.name = "sandfs-sim-guest";
        Frontend f(server.path(i % sockets), o);
        f.handshake();
        FuseGuest fs(f, 1 + i % 2);
        fs.init();
        arrived = true;
        all_at(connected);
        auto dir = fs.mkdir(root_id, "guest" + std::to_string(i));
        if (!dir.ok()) throw FrontendError("mkdir");
        auto c = fs.create(dir.value.nodeid, "data");
        if (!c.ok()) throw FrontendError("create");
        const auto data = pattern(96 * 1024, i);
        auto w = fs.write(c.value.entry.nodeid, c.value.open.fh, 0, data);
        if (!w.ok() || w.value != data.size()) throw FrontendError("write");
        auto r = fs.read(c.value.entry.nodeid, c.value.open.fh, 0, 128 * 1024);
        if (!r.ok() || checksum(r.value) != checksum(data)) throw FrontendError("read back");
        auto list = fs.list(root_id);
        // Only its own directory: every connection has its own MemFs.
        if (!list.ok() || list.value.size() != 3) throw FrontendError("readdir of /");
        if (fs.release(c.value.entry.nodeid, c.value.open.fh) != 0) throw FrontendError("release");
        if (fs.unlink(dir.value.nodeid, "data") != 0) throw FrontendError("unlink");
        if (fs.lookup(dir.value.nodeid, "data").error != ENOENT) throw FrontendError("lookup");
        if (fs.rmdir(root_id, "guest" + std::to_string(i)) != 0) throw FrontendError("rmdir");
        done = true;
        all_at(finished);
        f.shutdown();
        ++ok;
      } catch (const std::exception& e) {
        failures[i] = e.what();
        if (!arrived) all_at(connected);
        if (!done) all_at(finished);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  for (unsigned i = 0; i < guests; ++i) {
    INFO("guest " << i);
    CHECK(failures[i].empty());
  }
  CHECK(ok == guests);
  uint64_t connections = 0;
  for (unsigned s = 0; s < sockets; ++s)
    connections += server.totals(s).connections;
  CHECK(connections == guests);
  CHECK(server.bad_chains() == 0);
}

TEST_CASE("64 guests at once each get a correct filesystem of their own", "[vhost_user_sim]") {
  many_guests(64, 4);
}

TEST_CASE("256 guests at once on one socket", "[vhost_user_sim]") {
  many_guests(256, 1);
}

// ---- hostile descriptors ----------------------------------------------------------------------

// Guest RAM in these tests: [0, 4 MiB) and [4 GiB, 4 GiB + 4 MiB).
constexpr uint64_t hole = 0x80000000;
constexpr uint64_t region0_end = 4u << 20;
constexpr uint64_t region1_end = 0x100000000 + (4u << 20);

TEST_CASE("a buffer outside guest memory is completed with 0 bytes and counted",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t out = ram.alloc(128);
    return publish_raw_chain(q, std::vector<Buffer>{{hole, 64, false}, {out, 128, true}});
  });
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t in = ram.alloc(64);
    ram.write(in, getattr_request(9001));
    return publish_raw_chain(q, std::vector<Buffer>{{in, 56, false}, {~uint64_t{0} - 8, 64, true}});
  });
}

TEST_CASE("a buffer crossing the end of a region is completed with 0 bytes and counted",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t out = ram.alloc(128);
    return publish_raw_chain(q,
                             std::vector<Buffer>{{region0_end - 32, 64, false}, {out, 128, true}});
  });
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t in = ram.alloc(64);
    ram.write(in, getattr_request(9002));
    return publish_raw_chain(q,
                             std::vector<Buffer>{{in, 56, false}, {region1_end - 16, 4096, true}});
  });
}

TEST_CASE("a loop in next is completed with 0 bytes and counted", "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t in = ram.alloc(64);
    ram.write(in, getattr_request(9003));
    auto d = q.take_descriptors(2);
    REQUIRE(d);
    q.write_desc((*d)[0], {in, 56, vu::VRING_DESC_F_NEXT, (*d)[1]});
    q.write_desc((*d)[1], {in, 8, vu::VRING_DESC_F_NEXT, (*d)[0]});
    q.publish_raw((*d)[0]);
    q.kick(true);
    return (*d)[0];
  });
  // A descriptor that is its own successor.
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t in = ram.alloc(64);
    auto d = q.take_descriptors(1);
    REQUIRE(d);
    q.write_desc((*d)[0], {in, 56, vu::VRING_DESC_F_NEXT, (*d)[0]});
    q.publish_raw((*d)[0]);
    q.kick(true);
    return (*d)[0];
  });
}

TEST_CASE("a chain longer than the queue is completed with 0 bytes and counted",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  FrontendOptions o = quick();
  o.queue_size = 16;
  Guest g(server.path(), o);
  // Every descriptor of the table in one chain, and back to the first.
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t buf = ram.alloc(64);
    auto d = q.take_descriptors(q.free_descriptors());
    REQUIRE(d);
    for (size_t i = 0; i < d->size(); ++i) {
      q.write_desc((*d)[i], {buf, 8, vu::VRING_DESC_F_NEXT, (*d)[(i + 1) % d->size()]});
    }
    q.publish_raw((*d)[0]);
    q.kick(true);
    // Keep one descriptor taken as the head; give the rest back for the next request.
    q.give_back(std::span(*d).subspan(1));
    return (*d)[0];
  });
  // An indirect table larger than any queue may have (1025 entries > max(16, 1024)).
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t buf = ram.alloc(64);
    const uint64_t table = ram.alloc(16 * 1025, 16);
    for (uint32_t i = 0; i < 1025; ++i) {
      const vu::vring_desc e{buf, 8, vu::VRING_DESC_F_NEXT, static_cast<uint16_t>(i + 1)};
      ram.write(table + 16 * i, bytes_of(e));
    }
    auto d = q.take_descriptors(1);
    REQUIRE(d);
    q.write_desc((*d)[0], {table, 16 * 1025, vu::VRING_DESC_F_INDIRECT, 0});
    q.publish_raw((*d)[0]);
    q.kick(true);
    return (*d)[0];
  });
}

TEST_CASE("a head index past the queue size is dropped and counted", "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  expect_bad_chain(
      server, g,
      [](DriverQueue& q, GuestRam&) {
        q.publish_raw(static_cast<uint16_t>(q.size() + 7));
        q.kick(true);
        return uint16_t{0};
      },
      false);
  expect_bad_chain(
      server, g,
      [](DriverQueue& q, GuestRam&) {
        q.publish_raw(0xffff);
        q.kick(true);
        return uint16_t{0};
      },
      false);
}

TEST_CASE("a readable buffer after a writable one is completed with 0 bytes and counted",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t in = ram.alloc(64), out = ram.alloc(128);
    ram.write(in, getattr_request(9004));
    return publish_raw_chain(q, std::vector<Buffer>{{out, 128, true}, {in, 56, false}});
  });
}

TEST_CASE("malformed indirect tables are completed with 0 bytes and counted",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  auto indirect = [](uint64_t table, uint32_t len, uint16_t extra_flags = 0) {
    return [=](DriverQueue& q, GuestRam&) {
      auto d = q.take_descriptors(2);
      REQUIRE(d);
      q.write_desc(
          (*d)[0],
          {table, len, static_cast<uint16_t>(vu::VRING_DESC_F_INDIRECT | extra_flags), (*d)[1]});
      q.write_desc((*d)[1], {0, 0, 0, 0});
      q.publish_raw((*d)[0]);
      q.kick(true);
      return (*d)[0];
    };
  };
  GuestRam& ram = g.frontend.ram();
  const uint64_t in = ram.alloc(64), out = ram.alloc(128);
  ram.write(in, getattr_request(9005));
  const uint64_t table = ram.alloc(64, 16);
  const vu::vring_desc good[2] = {{in, 56, vu::VRING_DESC_F_NEXT, 1},
                                  {out, 128, vu::VRING_DESC_F_WRITE, 0}};
  ram.write(table, std::as_bytes(std::span(good)));

  SECTION("table outside guest memory") {
    expect_bad_chain(server, g, indirect(hole, 32));
  }
  SECTION("table crossing the end of a region") {
    expect_bad_chain(server, g, indirect(region0_end - 16, 32));
  }
  SECTION("size not a multiple of 16") {
    expect_bad_chain(server, g, indirect(table, 24));
  }
  SECTION("size 0") {
    expect_bad_chain(server, g, indirect(table, 0));
  }
  SECTION("INDIRECT together with NEXT") {
    expect_bad_chain(server, g, indirect(table, 32, vu::VRING_DESC_F_NEXT));
  }
  SECTION("nested indirect table") {
    const uint64_t outer = ram.alloc(32, 16);
    const vu::vring_desc nested[2] = {{table, 32, vu::VRING_DESC_F_INDIRECT, 0}, {}};
    ram.write(outer, std::as_bytes(std::span(nested)));
    expect_bad_chain(server, g, indirect(outer, 16));
  }
  SECTION("next past the end of the table") {
    const uint64_t t2 = ram.alloc(32, 16);
    const vu::vring_desc broken[2] = {{in, 56, vu::VRING_DESC_F_NEXT, 7},
                                      {out, 128, vu::VRING_DESC_F_WRITE, 0}};
    ram.write(t2, std::as_bytes(std::span(broken)));
    expect_bad_chain(server, g, indirect(t2, 32));
  }
  SECTION("the well-formed table works") {
    auto d = g.frontend.queue(1).take_descriptors(1);
    REQUIRE(d);
    g.frontend.queue(1).write_desc((*d)[0], {table, 32, vu::VRING_DESC_F_INDIRECT, 0});
    g.frontend.queue(1).publish_raw((*d)[0]);
    g.frontend.queue(1).kick(true);
    auto len = g.frontend.wait_raw_used(1, (*d)[0], 5000ms);
    REQUIRE(len);
    CHECK(*len == sizeof(fuse_out_header) + sizeof(fuse_attr_out));
    fuse_out_header h;
    ram.read(out, std::as_writable_bytes(std::span(&h, 1)));
    CHECK(h.error == 0);
    CHECK(h.unique == 9005);
  }
}

TEST_CASE("a request shorter than fuse_in_header is completed with 0 bytes and counted",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t in = ram.alloc(64), out = ram.alloc(128);
    ram.write(in, getattr_request(9006));
    return publish_raw_chain(q, std::vector<Buffer>{{in, 20, false}, {out, 128, true}});
  });
  // No readable buffer at all.
  expect_bad_chain(server, g, [](DriverQueue& q, GuestRam& ram) {
    const uint64_t out = ram.alloc(128);
    return publish_raw_chain(q, std::vector<Buffer>{{out, 128, true}});
  });
}

TEST_CASE("a fuse_in_header.len that lies is answered or ignored and the queue goes on",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  DriverQueue& q = g.frontend.queue(1);
  GuestRam& ram = g.frontend.ram();
  auto send = [&](uint64_t unique, uint32_t len) {
    const uint64_t in = ram.alloc(64), out = ram.alloc(256);
    ram.write(in, getattr_request(unique, len));
    const uint16_t head =
        publish_raw_chain(q, std::vector<Buffer>{{in, 56, false}, {out, 256, true}});
    auto used = g.frontend.wait_raw_used(1, head, 5000ms);
    REQUIRE(used);
    fuse_out_header h{};
    if (*used >= sizeof h) ram.read(out, std::as_writable_bytes(std::span(&h, 1)));
    return std::make_pair(*used, h);
  };
  SECTION("longer than the chain: EINVAL") {
    auto [used, h] = send(9101, 4096);
    CHECK(used == sizeof(fuse_out_header));
    CHECK(h.error == -EINVAL);
    CHECK(h.unique == 9101);
  }
  SECTION("much longer than any request: EINVAL") {
    auto [used, h] = send(9102, 0xffffffff);
    CHECK(used == sizeof(fuse_out_header));
    CHECK(h.error == -EINVAL);
  }
  SECTION("shorter than the header: EINVAL") {
    auto [used, h] = send(9103, 8);
    CHECK(used == sizeof(fuse_out_header));
    CHECK(h.error == -EINVAL);
  }
  SECTION("shorter than the arguments: the request is what len says") {
    auto [used, h] = send(9104, sizeof(fuse_in_header));
    CHECK(h.unique == 9104);
    CHECK(used == h.len);
  }
  check_queue_serves(g, 1);
}

TEST_CASE("a reply buffer too small for the reply is completed with 0 bytes",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  Guest g(server.path());
  DriverQueue& q = g.frontend.queue(1);
  GuestRam& ram = g.frontend.ram();
  auto send = [&](std::vector<Buffer> buffers) {
    const uint16_t head = publish_raw_chain(q, buffers);
    auto used = g.frontend.wait_raw_used(1, head, 5000ms);
    REQUIRE(used);
    return *used;
  };
  const uint64_t in = ram.alloc(64);
  ram.write(in, getattr_request(9201));
  SECTION("room for the header only") {
    const uint64_t out = ram.alloc(16);
    CHECK(send({{in, 56, false}, {out, 16, true}}) == 0);
  }
  SECTION("no writable buffer") {
    CHECK(send({{in, 56, false}}) == 0);
  }
  SECTION("a READ larger than its reply buffer") {
    auto c = g.fuse.create(root_id, "f");
    REQUIRE(c.ok());
    REQUIRE(g.fuse.write(c.value.entry.nodeid, c.value.open.fh, 0, pattern(8192, 1)).ok());
    fuse_in_header h{};
    fuse_read_in r{};
    h.len = sizeof h + sizeof r;
    h.opcode = FUSE_READ;
    h.unique = 9202;
    h.nodeid = c.value.entry.nodeid;
    r.fh = c.value.open.fh;
    r.size = 8192;
    const uint64_t rin = ram.alloc(sizeof h + sizeof r), out = ram.alloc(16), data = ram.alloc(100);
    ram.write(rin, bytes_of(h));
    ram.write(rin + sizeof h, bytes_of(r));
    const uint32_t used = send({{rin, h.len, false}, {out, 16, true}, {data, 100, true}});
    // An error, a read cut to the room there is, or nothing: never more than the room.
    CHECK(used <= 116);
    if (used >= 16) {
      fuse_out_header oh;
      ram.read(out, std::as_writable_bytes(std::span(&oh, 1)));
      CHECK(oh.unique == 9202);
      CHECK(oh.len == used);
    }
  }
  check_queue_serves(g, 1);
}

// A WRITE's data is not copied out of guest memory: the sizes the guest states must agree with
// the chain exactly, and data spread over several buffers in both regions must land in order.
TEST_CASE("WRITE data taken from guest memory is bounded by what the guest states",
          "[vhost_user_sim][hostile]") {
  SimServer server(1);
  Guest g(server.path());
  GuestRam& ram = g.frontend.ram();
  DriverQueue& q = g.frontend.queue(1);
  auto c = g.fuse.create(root_id, "w");
  REQUIRE(c.ok());
  const uint64_t ino = c.value.entry.nodeid, fh = c.value.open.fh;
  const auto data = pattern(3000, 11);

  // Sends a WRITE at offset 0 whose header says `in_len` and fuse_write_in says `size`, with
  // the data cut into `pieces` buffers alternating between the regions. Returns the reply.
  auto write = [&](uint32_t in_len, uint32_t size, std::vector<size_t> pieces) {
    fuse_in_header h{};
    h.len = in_len;
    h.opcode = FUSE_WRITE;
    h.unique = 9401;
    h.nodeid = ino;
    fuse_write_in w{};
    w.fh = fh;
    w.size = size;
    const uint64_t head = ram.alloc(sizeof h + sizeof w), out = ram.alloc(24);
    ram.write(head, bytes_of(h));
    ram.write(head + sizeof h, bytes_of(w));
    std::vector<Buffer> buffers{{head, sizeof h + sizeof w, false}};
    size_t off = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const uint64_t gpa = ram.alloc(pieces[i], 1, i % 2);
      ram.write(gpa, std::span(data).subspan(off, pieces[i]));
      buffers.push_back({gpa, static_cast<uint32_t>(pieces[i]), false});
      off += pieces[i];
    }
    buffers.push_back({out, 24, true});
    const uint16_t id = publish_raw_chain(q, buffers);
    auto used = g.frontend.wait_raw_used(1, id, 5000ms);
    REQUIRE(used);
    fuse_out_header oh{};
    fuse_write_out wo{};
    if (*used >= 16) ram.read(out, std::as_writable_bytes(std::span(&oh, 1)));
    if (*used >= 24) ram.read(out + 16, std::as_writable_bytes(std::span(&wo, 1)));
    CHECK(oh.unique == 9401);
    return std::make_pair(oh.error, wo.size);
  };
  constexpr uint32_t prefix = sizeof(fuse_in_header) + sizeof(fuse_write_in);
  auto size_now = [&] {
    auto a = g.fuse.getattr(ino);
    REQUIRE(a.ok());
    return a.value.attr.size;
  };

  SECTION("data in three buffers across both regions") {
    auto [err, n] = write(prefix + 3000, 3000, {1000, 1, 1999});
    CHECK(err == 0);
    CHECK(n == 3000);
    auto back = g.fuse.read(ino, fh, 0, 4096);
    REQUIRE(back.ok());
    CHECK(checksum(back.value) == checksum(data));
  }
  SECTION("fuse_write_in.size larger than the data") {
    CHECK(write(prefix + 100, 3000, {100}).first == -EINVAL);
    CHECK(size_now() == 0);
  }
  SECTION("fuse_write_in.size smaller than the data") {
    CHECK(write(prefix + 3000, 100, {3000}).first == -EINVAL);
    CHECK(size_now() == 0);
  }
  SECTION("fuse_in_header.len larger than the chain") {
    CHECK(write(prefix + 3000 + 4096, 3000, {3000}).first == -EINVAL);
    CHECK(size_now() == 0);
  }
  SECTION("fuse_in_header.len smaller than the chain") {
    CHECK(write(prefix + 10, 10, {3000}).first == -EINVAL);
    CHECK(size_now() == 0);
  }
  SECTION("fuse_write_in.size past max_write") {
    CHECK(write(prefix + 100, 0x80000000u, {100}).first == -EINVAL);
    CHECK(size_now() == 0);
  }
  check_queue_serves(g, 1);
}

TEST_CASE("avail idx far ahead stops that queue only", "[vhost_user_sim][hostile]") {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  Guest g(server.path(), o);
  DriverQueue& q = g.frontend.queue(1);
  q.set_avail_idx(static_cast<uint16_t>(q.avail_idx() + q.size() + 1));
  q.kick(true);
  Ticket t = g.frontend.submit(1, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}),
                               sizeof(fuse_attr_out));
  CHECK_FALSE(g.frontend.try_wait(t, 300ms));
  // The connection's other queue and its control channel still work ...
  check_queue_serves(g, 2);
  CHECK(g.frontend.get_queue_num() == 3);
  // ... and so does a new connection.
  check_fresh_connection(server.path());
}

// Regression: the queue signalled its call fd with a blocking write(2) on its io thread. A
// frontend that passes a blocking eventfd and fills its counter (or a pipe nobody reads) made that
// write block forever, and with it every connection and ring served by that thread.
TEST_CASE("a call eventfd at its maximum count does not stall the server thread",
          "[vhost_user_sim][hostile]") {
  SimServer server(1, 1, 1);  // one io thread: the control channel and the rings share it
  FrontendOptions o = quick();
  o.request_queues = 1;
  o.timeout = 2000ms;
  Guest g(server.path(), o);
  UniqueFd call(::eventfd(0, EFD_CLOEXEC));  // blocking, unlike QEMU's
  REQUIRE(call);
  const uint64_t almost_full = 0xfffffffffffffffe;  // one more write would block
  REQUIRE(::write(call.get(), &almost_full, 8) == 8);
  const uint64_t index = 1;
  const int fd = call.get();
  REQUIRE(g.frontend.send_with_ack(vu::Request::set_vring_call, bytes_of(index),
                                   std::span(&fd, 1)) == 0);

  DriverQueue& q = g.frontend.queue(1);
  const uint16_t used_before = q.used_idx();
  q.arm_interrupt();
  g.frontend.submit(1, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}),
                    sizeof(fuse_attr_out));
  // The reply is in the used ring; the interrupt for it cannot raise the full counter.
  CHECK(eventually([&] { return q.used_idx() != used_before; }));
  // The server's thread is free: the control channel answers and a new guest is served.
  CHECK_NOTHROW(g.frontend.get_features());
  CHECK_NOTHROW(check_fresh_connection(server.path()));
  // Unblocks a server that did block, so that a failure here ends instead of hanging.
  uint64_t drained;
  CHECK(::read(call.get(), &drained, 8) == 8);
}

// Random chains (seeded, so a failure replays) built from buffers inside a scratch area, holes,
// region ends, random tables and random `next` links, with request headers of a few opcodes
// and lying lengths; then a second thread rewriting descriptors while the server walks them.
// Every chain must come back (served or completed as bad), and the rest keep working. Under
// ASan this is the check that nothing outside guest memory is touched.
TEST_CASE("random chains and a guest rewriting its descriptors do no harm",
          "[vhost_user_sim][hostile]") {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  o.queue_size = 64;
  Guest g(server.path(), o);
  GuestRam& ram = g.frontend.ram();
  constexpr uint64_t scratch_size = 256 * 1024;
  const uint64_t scratch = ram.alloc(scratch_size, 4096, 1);
  std::mt19937_64 rng(20261206);
  auto pick = [&](uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng); };
  {
    // Request headers scattered through the scratch area; random bytes elsewhere.
    std::vector<std::byte> fill(scratch_size);
    for (auto& b : fill)
      b = static_cast<std::byte>(pick(256));
    const uint32_t opcodes[] = {FUSE_GETATTR, FUSE_LOOKUP,   FUSE_READ,    FUSE_STATFS,
                                FUSE_READDIR, FUSE_ACCESS,   999,          FUSE_WRITE,
                                FUSE_FLUSH,   FUSE_GETXATTR, FUSE_OPENDIR, FUSE_LISTXATTR};
    for (uint64_t off = 0; off + 64 <= scratch_size; off += 512) {
      fuse_in_header h{};
      h.len = pick(4) == 0 ? static_cast<uint32_t>(pick(1 << 20)) : 40 + pick(64);
      h.opcode = opcodes[pick(std::size(opcodes))];
      h.unique = off;
      h.nodeid = pick(3) == 0 ? pick(1 << 20) : root_id;
      std::memcpy(fill.data() + off, &h, sizeof h);
    }
    ram.write(scratch, fill);
  }
  auto random_buffer = [&]() -> std::pair<uint64_t, uint32_t> {
    switch (pick(8)) {
      case 0:
        return {hole + pick(4096), static_cast<uint32_t>(1 + pick(4096))};
      case 1:
        return {region0_end - pick(64), static_cast<uint32_t>(64 + pick(64))};
      case 2:
        return {pick(~uint64_t{0}), static_cast<uint32_t>(pick(1u << 31))};
      default: {
        const uint64_t off = pick(scratch_size / 512) * 512 + (pick(4) == 0 ? pick(512) : 0);
        return {scratch + off, static_cast<uint32_t>(pick(scratch_size - off + 1))};
      }
    }
  };

  DriverQueue& q = g.frontend.queue(1);
  const uint64_t bad_before = server.bad_chains();
  for (int round = 0; round < 150; ++round) {
    // Up to 4 chains in flight at once.
    std::vector<std::vector<uint16_t>> chains;
    const size_t batch = 1 + pick(4);
    for (size_t c = 0; c < batch; ++c) {
      const size_t n = 1 + pick(5);
      auto d = q.take_descriptors(n);
      REQUIRE(d);
      for (size_t i = 0; i < n; ++i) {
        auto [addr, len] = random_buffer();
        uint16_t flags = 0;
        if (i > 0 && pick(2) == 0) flags |= vu::VRING_DESC_F_WRITE;
        if (i + 1 < n) flags |= vu::VRING_DESC_F_NEXT;
        if (pick(12) == 0) {
          flags |= vu::VRING_DESC_F_INDIRECT;
          len = static_cast<uint32_t>(16 * (1 + pick(8)));
        }
        uint16_t next = i + 1 < n ? (*d)[i + 1] : 0;
        if (pick(10) == 0) next = static_cast<uint16_t>(pick(2 * q.size()));
        q.write_desc((*d)[i], {addr, len, flags, next});
      }
      q.publish_raw((*d)[0]);
      chains.push_back(std::move(*d));
    }
    q.kick(true);
    for (auto& d : chains) {
      INFO("round " << round);
      REQUIRE(g.frontend.wait_raw_used(1, d[0], 5000ms));
      q.give_back(d);
    }
  }
  CHECK(server.bad_chains() > bad_before);
  check_queue_serves(g, 1);

  // Descriptors rewritten while the server reads them (queue 2; the scribbler keeps to the
  // descriptor table and to addresses in the scratch area or outside guest memory).
  DriverQueue& q2 = g.frontend.queue(2);
  std::atomic<bool> stop{false};
  std::thread scribbler([&, seed = rng()] {
    std::mt19937_64 r(seed);
    std::byte* table = ram.host(q2.desc_gpa(), 16 * q2.size());
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t slot = r() % q2.size();
      const uint64_t off = (r() % scratch_size) & ~uint64_t{7};
      const uint64_t addr = r() % 4 == 0 ? hole : scratch + off;
      const uint64_t len = r() % (scratch_size - off + 1);
      const uint64_t flags = r() % 8;
      const uint64_t next = r() % (2 * q2.size());
      std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(table + 16 * slot))
          .store(addr, std::memory_order_relaxed);
      std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(table + 16 * slot + 8))
          .store(len | flags << 32 | next << 48, std::memory_order_relaxed);
    }
  });
  const auto until = std::chrono::steady_clock::now() + 300ms;
  size_t published = 0;
  while (std::chrono::steady_clock::now() < until) {
    std::vector<uint16_t> heads;
    for (int i = 0; i < 8; ++i) {
      const uint16_t head = static_cast<uint16_t>(pick(q2.size()));
      q2.publish_raw(head);
      heads.push_back(head);
    }
    q2.kick(true);
    for (uint16_t head : heads)
      REQUIRE(g.frontend.wait_raw_used(2, head, 5000ms));
    published += heads.size();
  }
  stop = true;
  scribbler.join();
  CHECK(published > 0);
  check_queue_serves(g, 1);
  check_fresh_connection(server.path());
}

// Two rings given one blocking eventfd as their kick are both woken by one kick: the first
// read(2) empties it, and a blocking second read would hold the io thread (every ring and
// connection on it) until the next kick. Asio makes a descriptor non-blocking at its first wait;
// this pins that the queue's read relies on it safely.
TEST_CASE("one kick eventfd shared by two rings does not stall the server thread",
          "[vhost_user_sim][hostile]") {
  SimServer server(2, 1, 1);  // one io thread
  FrontendOptions o = quick();
  o.request_queues = 2;
  o.timeout = 2000ms;
  Guest g(server.path(), o);
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC));  // blocking, unlike QEMU's
  REQUIRE(kick);
  for (uint64_t index : {1, 2}) {
    const int fd = kick.get();
    REQUIRE(g.frontend.send_with_ack(vu::Request::set_vring_kick, bytes_of(index),
                                     std::span(&fd, 1)) == 0);
  }
  const uint64_t one = 1;
  REQUIRE(::write(kick.get(), &one, 8) == 8);
  std::this_thread::sleep_for(50ms);  // both rings wake up and read
  CHECK_NOTHROW(g.frontend.get_features());
  CHECK_NOTHROW(check_fresh_connection(server.path()));
  // Unblocks a server that did block, so that a failure here ends instead of hanging.
  REQUIRE(::write(kick.get(), &one, 8) == 8);
}

// ---- hostile messages -------------------------------------------------------------------------

// A connection that has been through the handshake, for messages sent mid-session.
struct Hostile {
  explicit Hostile(SimServer& s) : server(s), f(s.path(), quick()) { f.handshake(); }
  // The backend ended this connection, and the server serves the next one.
  void expect_dropped() {
    CHECK(f.wait_closed(5000ms));
    check_fresh_connection(server.path());
  }
  // The backend kept this connection and it still answers.
  void expect_kept() {
    CHECK(f.get_features() != 0);
    FuseGuest fuse(f);
    fuse.init();
    CHECK(fuse.getattr(root_id).ok());
    check_fresh_connection(server.path());
  }
  SimServer& server;
  Frontend f;
};

constexpr uint32_t v1 = vu::version;

TEST_CASE("a payload larger than any message ends the connection", "[vhost_user_sim][hostile]") {
  SimServer server;
  Hostile h(server);
  h.f.send_message(static_cast<uint32_t>(vu::Request::set_features), v1, {}, {},
                   vu::max_payload + 1);
  h.expect_dropped();
  Hostile h2(server);
  h2.f.send_message(static_cast<uint32_t>(vu::Request::get_features), v1, {}, {}, 0xffffffff);
  h2.expect_dropped();
}

TEST_CASE("wrong version bits end the connection", "[vhost_user_sim][hostile]") {
  SimServer server;
  for (uint32_t flags : {0u, 2u, 3u}) {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::get_features), flags, {});
    h.expect_dropped();
  }
}

TEST_CASE("a malformed memory table ends the connection", "[vhost_user_sim][hostile]") {
  SimServer server;
  auto table = [](std::vector<vu::MemoryRegion> regions, std::optional<uint32_t> count = {}) {
    std::vector<std::byte> out(8 + 32 * regions.size());
    const uint32_t n = count.value_or(static_cast<uint32_t>(regions.size()));
    std::memcpy(out.data(), &n, 4);
    if (!regions.empty()) std::memcpy(out.data() + 8, regions.data(), 32 * regions.size());
    return out;
  };
  Hostile h(server);
  const auto& ram = h.f.ram().regions();
  const int fd0 = ram[0].fd.get(), fd1 = ram[1].fd.get();
  const auto user0 = reinterpret_cast<uint64_t>(ram[0].host);
  const auto user1 = reinterpret_cast<uint64_t>(ram[1].host);
  const uint64_t size = ram[0].size;
  const int two[2] = {fd0, fd1};
  const auto set_mem_table = static_cast<uint32_t>(vu::Request::set_mem_table);

  SECTION("no regions") {
    h.f.send_message(set_mem_table, v1, table({}));
  }
  SECTION("more regions than fds") {
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 0}, {0x100000000, size, user1, 0}}),
                     std::span(&fd0, 1));
  }
  SECTION("more fds than regions") {
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 0}}), two);
  }
  SECTION("a count that disagrees with the payload") {
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 0}}, 2), two);
  }
  SECTION("more regions than a message may hold") {
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 0}}, 9), std::span(&fd0, 1));
  }
  SECTION("overlapping regions") {
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 0}, {size / 2, size, user1, 0}}),
                     two);
  }
  SECTION("a region past the end of its memfd") {
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 2 * size}}), std::span(&fd0, 1));
  }
  SECTION("a region longer than its memfd") {
    h.f.send_message(set_mem_table, v1, table({{0, 2 * size, user0, 0}}), std::span(&fd0, 1));
  }
  SECTION("an empty region") {
    h.f.send_message(set_mem_table, v1, table({{0, 0, user0, 0}}), std::span(&fd0, 1));
  }
  SECTION("a region wrapping the address space") {
    h.f.send_message(set_mem_table, v1, table({{~uint64_t{0} - 4095, size, user0, 0}}),
                     std::span(&fd0, 1));
  }
  SECTION("a region whose fd is not memory") {
    PipeProbe p;
    const int fd = p.write_end.get();
    h.f.send_message(set_mem_table, v1, table({{0, size, user0, 0}}), std::span(&fd, 1));
  }
  h.expect_dropped();
}

TEST_CASE("a ring size that is not a power of 2 ends the connection", "[vhost_user_sim][hostile]") {
  SimServer server;
  for (uint32_t num : {0u, 100u, 65536u, 0x80000000u}) {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_num), v1,
                     bytes_of(vu::VringState{1, num}));
    h.expect_dropped();
  }
}

TEST_CASE("rings outside guest memory are not started and the connection goes on",
          "[vhost_user_sim][hostile]") {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  Frontend f(server.path(), o);
  f.handshake();
  FuseGuest fs(f);
  fs.init();
  DriverQueue& q2 = f.queue(2);
  const uint16_t base = static_cast<uint16_t>(f.get_vring_base(2));
  GuestRam& ram = f.ram();
  const uint64_t desc = ram.user_addr(q2.desc_gpa());
  const uint64_t avail = ram.user_addr(q2.avail_gpa());
  const uint64_t used = ram.user_addr(q2.used_gpa());
  SECTION("descriptor table unmapped") {
    f.set_vring_addr(vu::VringAddr{2, 0, 0x1000, used, avail, 0});
  }
  SECTION("used ring past the end of a region") {
    f.set_vring_addr(vu::VringAddr{2, 0, desc, ram.user_addr(region0_end - 8), avail, 0});
  }
  SECTION("available ring misaligned") {
    f.set_vring_addr(vu::VringAddr{2, 0, desc, used, avail + 1, 0});
  }
  SECTION("addresses that wrap") {
    f.set_vring_addr(vu::VringAddr{2, 0, ~uint64_t{0} - 15, used, avail, 0});
  }
  f.set_vring_kick(2);  // would start the ring: it cannot
  Ticket t =
      f.submit(2, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}), sizeof(fuse_attr_out));
  CHECK_FALSE(f.try_wait(t, 200ms));
  check_fresh_connection(server.path());
  fs.use_queue(1);
  CHECK(fs.getattr(root_id).ok());
  // Given good addresses, the ring starts where it was and serves what waits in it.
  f.set_vring_base(2, base);
  f.set_vring_addr(2);
  f.set_vring_kick(2);
  auto r = f.try_wait(t, 5000ms);
  REQUIRE(r);
  CHECK(r->error() == 0);
}

// Rings the frontend may legally describe but that make no sense: the three parts on top of one
// another, or a size larger than the driver laid out (the parts then run into whatever follows
// them). The server may serve garbage from them, but only within guest memory, and the
// connection's other rings, its control channel and other connections are unaffected.
TEST_CASE("overlapping or oversized rings only confuse their own queue",
          "[vhost_user_sim][hostile]") {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  Frontend f(server.path(), o);
  f.handshake();
  FuseGuest fs(f);
  fs.init();
  DriverQueue& q2 = f.queue(2);
  GuestRam& ram = f.ram();
  const uint16_t base = static_cast<uint16_t>(f.get_vring_base(2));
  bool overlapped = false;
  SECTION("desc, avail and used at one address") {
    const uint64_t at = ram.user_addr(q2.desc_gpa());
    f.set_vring_addr(vu::VringAddr{2, 0, at, at, at, 0});
    overlapped = true;
  }
  SECTION("a ring size four times what the driver laid out") {
    f.set_vring_num(2, 4u * q2.size());
    f.set_vring_addr(2);
  }
  f.set_vring_base(2, base);
  f.set_vring_kick(2);
  for (int i = 0; i < 8; ++i) {
    f.submit(2, FUSE_GETATTR, root_id, FuseGuest::arg(fuse_getattr_in{}), sizeof(fuse_attr_out));
  }
  if (overlapped) {
    // The simulator's driver keeps to its own layout; offer what the descriptor table's bytes
    // say as avail slots, through the available ring the server now reads (the same bytes).
    const uint16_t offered = static_cast<uint16_t>(base + 5);
    std::memcpy(ram.host(q2.desc_gpa() + 2, 2), &offered, 2);
    const uint64_t one = 1;
    REQUIRE(::write(q2.kick_fd(), &one, 8) == 8);
  }
  std::this_thread::sleep_for(100ms);
  CHECK(f.get_queue_num() == 3);
  fs.use_queue(1);
  CHECK(fs.getattr(root_id).ok());
  check_fresh_connection(server.path());
}

TEST_CASE("a vring index out of range ends the connection", "[vhost_user_sim][hostile]") {
  SimServer server(1);  // vrings 0 and 1
  auto state = [](uint32_t index) {
    const vu::VringState s{index, 64};
    const auto bytes = bytes_of(s);
    return std::vector<std::byte>(bytes.begin(), bytes.end());
  };
  SECTION("SET_VRING_NUM") {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_num), v1, state(2));
    h.expect_dropped();
  }
  SECTION("SET_VRING_BASE") {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_base), v1, state(0xffffffff));
    h.expect_dropped();
  }
  SECTION("GET_VRING_BASE") {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::get_vring_base), v1, state(99));
    h.expect_dropped();
  }
  SECTION("SET_VRING_ENABLE") {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_enable), v1, state(5));
    h.expect_dropped();
  }
  SECTION("SET_VRING_ADDR") {
    Hostile h(server);
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_addr), v1,
                     bytes_of(vu::VringAddr{7, 0, 0, 0, 0, 0}));
    h.expect_dropped();
  }
  SECTION("SET_VRING_KICK with an fd") {
    Hostile h(server);
    PipeProbe p;
    const uint64_t index = 0xff;
    const int fd = p.write_end.get();
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_kick), v1, bytes_of(index),
                     std::span(&fd, 1));
    h.expect_dropped();
    CHECK(p.closed_everywhere());
  }
}

TEST_CASE("payloads of the wrong size and features never offered end the connection",
          "[vhost_user_sim][hostile]") {
  SimServer server(1);
  struct Case {
    vu::Request request;
    size_t size;
  };
  for (const Case c :
       {Case{vu::Request::set_features, 4}, Case{vu::Request::set_features, 16},
        Case{vu::Request::set_protocol_features, 0}, Case{vu::Request::set_vring_num, 4},
        Case{vu::Request::set_vring_base, 12}, Case{vu::Request::set_vring_addr, 32},
        Case{vu::Request::get_vring_base, 0}, Case{vu::Request::set_vring_enable, 9},
        Case{vu::Request::set_vring_call, 4}, Case{vu::Request::set_mem_table, 4}}) {
    INFO(vu::request_name(static_cast<uint32_t>(c.request)) << " with " << c.size << " bytes");
    Hostile h(server);
    const std::vector<std::byte> payload(c.size);
    h.f.send_message(static_cast<uint32_t>(c.request), v1, payload);
    h.expect_dropped();
  }
  Hostile h(server);
  const uint64_t features = uint64_t{1} << 40;
  h.f.send_message(static_cast<uint32_t>(vu::Request::set_features), v1, bytes_of(features));
  h.expect_dropped();
}

TEST_CASE("a kick fd that cannot be polled leaves that ring idle and nothing else",
          "[vhost_user_sim][hostile]") {
  SimServer server(2);
  FrontendOptions o = quick();
  o.request_queues = 2;
  Guest g(server.path(), o);
  // A regular file (epoll refuses those) and a pipe's write end (never readable).
  PipeProbe pipe;
  const int memfd = g.frontend.ram().regions()[0].fd.get();
  for (int fd : {memfd, pipe.write_end.get()}) {
    const uint64_t index = 2;
    CHECK(g.frontend.send_with_ack(vu::Request::set_vring_kick, bytes_of(index),
                                   std::span(&fd, 1)) == 0);
    check_queue_serves(g, 1);
  }
  check_fresh_connection(server.path());
}

TEST_CASE("unknown requests are refused and the connection goes on", "[vhost_user_sim][hostile]") {
  SimServer server;
  Hostile h(server);
  for (uint32_t request : {0u, 6u, 24u, 31u, 41u, 1000u, 0xffffffffu}) {
    INFO("request " << request);
    const uint64_t value = 0;
    h.f.send_message(request, v1 | vu::flag_need_reply, bytes_of(value));
    Received r = h.f.receive();
    REQUIRE(r.status == Received::Status::message);
    CHECK(r.header.request == request);
    REQUIRE(r.payload.size() == 8);
    uint64_t status;
    std::memcpy(&status, r.payload.data(), 8);
    CHECK(status != 0);
  }
  // Without NEED_REPLY: no answer at all, and the next request is still served.
  h.f.send_message(1000, v1, {});
  h.expect_kept();
}

TEST_CASE("a message cut off by a disconnect ends only that connection",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  SECTION("in the payload") {
    Hostile h(server);
    const vu::MessageHeader head{static_cast<uint32_t>(vu::Request::set_vring_addr), v1, 40};
    std::vector<std::byte> bytes(sizeof head + 10);
    std::memcpy(bytes.data(), &head, sizeof head);
    h.f.send_bytes(bytes);
    h.f.disconnect();
  }
  SECTION("in the header") {
    Hostile h(server);
    const std::byte half[6] = {std::byte{1}};
    h.f.send_bytes(half);
    h.f.disconnect();
  }
  SECTION("in the payload of a memory table with its fds") {
    Hostile h(server);
    PipeProbe p;
    const vu::MessageHeader head{static_cast<uint32_t>(vu::Request::set_mem_table), v1, 40};
    std::vector<std::byte> bytes(sizeof head + 8);
    std::memcpy(bytes.data(), &head, sizeof head);
    const int fd = p.write_end.get();
    h.f.send_bytes(bytes, std::span(&fd, 1));
    h.f.disconnect();
    CHECK(p.closed_everywhere());
  }
  check_fresh_connection(server.path());
}

TEST_CASE("fds attached to messages that take none are closed", "[vhost_user_sim][hostile]") {
  SimServer server;
  Hostile h(server);
  std::vector<PipeProbe> probes(3);
  std::vector<int> fds;
  for (auto& p : probes)
    fds.push_back(p.write_end.get());
  h.f.send_message(static_cast<uint32_t>(vu::Request::get_features), v1, {}, fds);
  Received r = h.f.receive();
  REQUIRE(r.status == Received::Status::message);
  CHECK(r.fds.empty());
  h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_num), v1 | vu::flag_need_reply,
                   bytes_of(vu::VringState{1, 128}), fds);
  CHECK(h.f.receive().status == Received::Status::message);
  h.f.send_message(static_cast<uint32_t>(vu::Request::set_owner), v1 | vu::flag_need_reply, {},
                   fds);
  CHECK(h.f.receive().status == Received::Status::message);
  for (auto& p : probes)
    CHECK(p.closed_everywhere());
  h.expect_kept();
}

TEST_CASE("an fd flag that disagrees with the fds ends the connection and closes them",
          "[vhost_user_sim][hostile]") {
  SimServer server;
  std::vector<PipeProbe> probes(2);
  const int fds[2] = {probes[0].write_end.get(), probes[1].write_end.get()};
  SECTION("two fds") {
    Hostile h(server);
    const uint64_t index = 1;
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_call), v1, bytes_of(index), fds);
    h.expect_dropped();
  }
  SECTION("an fd and the no-fd flag") {
    Hostile h(server);
    const uint64_t index = 1 | vu::vring_nofd_mask;
    h.f.send_message(static_cast<uint32_t>(vu::Request::set_vring_kick), v1, bytes_of(index),
                     std::span(fds, 1));
    h.expect_dropped();
  }
  SECTION("more fds than any message may carry") {
    Hostile h(server);
    std::vector<PipeProbe> many(12);
    std::vector<int> all;
    for (auto& p : many)
      all.push_back(p.write_end.get());
    h.f.send_message(static_cast<uint32_t>(vu::Request::get_features), v1, {}, all);
    h.expect_dropped();
    for (auto& p : many)
      CHECK(p.closed_everywhere());
  }
  for (auto& p : probes)
    CHECK(p.closed_everywhere());
}

}  // namespace
