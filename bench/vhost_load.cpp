// vhost_load: many simulated virtio-fs guests against vhost-user-fs sockets, one guest per socket,
// all running the same mixed FUSE workload for a fixed time.
//
//   vhost_load [--seconds S] [--warmup S] [--depth D] [--client-threads T] [--io-size B]
//              [--direct-descriptors] [--server-pids PID,PID...] SOCKET...
//
// Each guest is a test::vhost::Frontend (tests/support/vhost_user_frontend.hpp): memfd guest RAM,
// the QEMU-like handshake, one request queue plus the high-priority queue, FUSE_INIT, then a
// directory of its own ("g<N>" under the share's root) and D lanes. A lane is one request in
// flight at a time, looping over
//
//   CREATE l<lane>-<i> (O_RDWR|O_CREAT|O_EXCL) -> WRITE B bytes at 0 -> GETATTR (size must be B)
//   -> LOOKUP (must name the same node) -> READ B (must be the bytes written) -> RELEASE
//   -> OPEN (O_RDONLY) -> READ B (again checked) -> RELEASE -> READDIR of the guest's directory
//   (offset 0, 4 KiB, must list the file) -> UNLINK -> FORGET (2 lookups, high-priority queue)
//
// that is 12 requests per iteration, and D iterations of one guest run side by side. Any FUSE
// error, short or malformed reply, wrong bytes, or a request unanswered for 10 s counts as an
// error and stops that guest; the exit status is 1 when there was any.
//
// Why an event loop and not a thread per guest: 256 guests on a 2-CPU machine would be 256
// blocking threads whose wake-ups compete with the server for the same CPUs. Here T client
// threads (default 1) each own every T-th guest and sleep in one epoll_wait on all of their
// guests' call eventfds; a wake-up services every guest that was signalled, so under load one
// wake-up collects many replies. Requests are written into the rings directly (indirect
// descriptor tables by default, as a Linux guest does once VIRTIO_RING_F_INDIRECT_DESC is
// negotiated) and kicks follow EVENT_IDX. The client's own CPU time over the measured window is
// printed, so a run where the client and not the server was the limit shows itself.
//
// The frontend re-arms the guest's interrupt (the EVENT_IDX used_event) only inside its own
// blocking waits; arm() below does the same store so that a client which never blocks in the
// frontend still gets signalled.
//
// Latency is from just before a request is written into the ring to the client seeing its reply
// (so it includes the client's reaction time); only requests completing inside the measured
// window (after the warm-up) count. --server-pids names the server processes whose CPU time over
// the window (all threads, from /proc/PID/stat) and memory at its end (VmRSS, RssAnon, RssShmem
// from /proc/PID/status, Pss from smaps_rollup) are reported, summed, with every guest still
// connected. Output: a table, a per-opcode table, per-guest spread, and one "result k=v ..."
// line for scripts (bench/vhost_load.sh).
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <bit>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/vhost_user_frontend.hpp"

namespace {

namespace vt = sandfs::test::vhost;
namespace fk = sandfs::fuse;
using Clock = std::chrono::steady_clock;

constexpr auto stall_limit = std::chrono::seconds(10);
constexpr auto drain_limit = std::chrono::seconds(10);

// ---- latency histogram ------------------------------------------------------------------------

// Log-linear buckets over nanoseconds: 32 linear sub-buckets per power of two (~3 % resolution),
// exact below 32 ns, up to 2^45 ns (~10 hours).
class Histogram {
 public:
  static constexpr unsigned sub_bits = 5;
  static constexpr unsigned sub = 1u << sub_bits;
  static constexpr unsigned max_exp = 45;
  static constexpr unsigned buckets = (max_exp - sub_bits + 2) * sub;

  void add(uint64_t ns) {
    ++counts_[index(ns)];
    ++total_;
  }
  void merge(const Histogram& o) {
    for (unsigned i = 0; i < buckets; ++i)
      counts_[i] += o.counts_[i];
    total_ += o.total_;
  }
  uint64_t total() const { return total_; }
  // The value below which a fraction q of the samples lie (a bucket's midpoint), in ns.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return midpoint(i);
    }
    return midpoint(buckets - 1);
  }

 private:
  static unsigned index(uint64_t v) {
    if (v < sub) return static_cast<unsigned>(v);
    const unsigned e =
        std::min<unsigned>(63u - static_cast<unsigned>(std::countl_zero(v)), max_exp);
    if (e == max_exp && (v >> max_exp) > 1) return buckets - 1;
    return (e - sub_bits + 1) * sub + static_cast<unsigned>((v >> (e - sub_bits)) & (sub - 1));
  }
  static double midpoint(unsigned i) {
    if (i < sub) return i;
    const unsigned e = i / sub - 1 + sub_bits;
    const double width = static_cast<double>(uint64_t{1} << (e - sub_bits));
    const double low = static_cast<double>((i % sub) + sub) * width;
    return low + width / 2;
  }

  std::vector<uint64_t> counts_ = std::vector<uint64_t>(buckets);
  uint64_t total_ = 0;
};

// ---- the workload -----------------------------------------------------------------------------

enum class Step : unsigned {
  create,
  write,
  getattr,
  lookup,
  read,
  release,
  open,
  reread,
  rerelease,
  readdir,
  unlink,
  forget,
  count
};
constexpr unsigned step_count = static_cast<unsigned>(Step::count);

// Per-opcode statistics fold the two READs and the two RELEASEs together.
enum class OpKind : unsigned {
  create,
  write,
  getattr,
  lookup,
  read,
  release,
  open,
  readdir,
  unlink,
  forget,
  count
};
constexpr unsigned kind_count = static_cast<unsigned>(OpKind::count);
constexpr std::array<const char*, kind_count> kind_names = {
    "CREATE",  "WRITE", "GETATTR", "LOOKUP", "READ",
    "RELEASE", "OPEN",  "READDIR", "UNLINK", "FORGET"};

OpKind kind_of(Step s) {
  switch (s) {
    case Step::create:
      return OpKind::create;
    case Step::write:
      return OpKind::write;
    case Step::getattr:
      return OpKind::getattr;
    case Step::lookup:
      return OpKind::lookup;
    case Step::read:
    case Step::reread:
      return OpKind::read;
    case Step::release:
    case Step::rerelease:
      return OpKind::release;
    case Step::open:
      return OpKind::open;
    case Step::readdir:
      return OpKind::readdir;
    case Step::unlink:
      return OpKind::unlink;
    case Step::forget:
    case Step::count:
      break;
  }
  return OpKind::forget;
}

struct Options {
  std::vector<std::string> sockets;
  double seconds = 10;
  double warmup = 1;
  unsigned depth = 4;
  unsigned client_threads = 1;
  uint32_t io_size = 4096;
  bool indirect = true;
  bool per_guest = false;
  std::vector<int> server_pids;  // whose CPU time and memory to report
};

struct Lane {
  unsigned index = 0;
  uint64_t dir_fh = 0;
  uint64_t iteration = 0;
  Step step = Step::create;
  uint64_t nodeid = 0;
  uint64_t fh = 0;
  std::string name;
  std::vector<std::byte> data;  // what this iteration writes and must read back
  bool busy = false;
  vt::Ticket ticket;
  Clock::time_point sent;
};

struct Guest {
  unsigned id = 0;
  std::string socket;
  std::unique_ptr<vt::Frontend> frontend;
  uint64_t dir = 0;
  std::vector<Lane> lanes;
  Histogram latency;  // requests completed in the measured window
  uint64_t ops = 0;
  uint64_t errors = 0;
  std::string first_error;
  bool dead = false;  // stopped after an error
};

struct Window {
  Clock::time_point start, begin, end;  // submissions start / counting begins / stops
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: vhost_load [--seconds S] [--warmup S] [--depth D] [--client-threads T]\n"
               "                  [--io-size BYTES] [--direct-descriptors]\n"
               "                  [--server-pids PID,PID...] SOCKET...\n");
  std::exit(2);
}

void fail(Guest& g, const std::string& why) {
  ++g.errors;
  if (g.first_error.empty()) g.first_error = why;
  g.dead = true;
}

std::span<const std::byte> bytes_of_string(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size() + 1));  // with the NUL FUSE wants
}

// One client thread: its guests, their set-up, the event loop, and its per-opcode statistics.
class Client {
 public:
  Client(const Options& o, std::vector<Guest*> guests) : o_(o), guests_(std::move(guests)) {}

  // Connects and prepares every guest of this thread; failures are recorded on the guest.
  void set_up() {
    for (Guest* g : guests_) {
      try {
        set_up(*g);
      } catch (const std::exception& e) {
        fail(*g, std::string("set-up: ") + e.what());
      }
    }
  }

  void run(const Window& w) {
    window_ = w;
    UniqueEpoll ep;
    for (size_t i = 0; i < guests_.size(); ++i) {
      Guest& g = *guests_[i];
      if (g.dead) continue;
      for (unsigned q = 0; q < 2; ++q) {
        const int fd = g.frontend->queue(q).call_fd();
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i * 2 + q;
        if (::epoll_ctl(ep.fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
          fail(g, std::string("epoll_ctl: ") + std::strerror(errno));
        }
      }
    }
    std::this_thread::sleep_until(w.start);
    for (Guest* g : guests_) {
      for (Lane& l : g->lanes)
        if (!g->dead) submit(*g, l);
    }
    std::vector<epoll_event> events(512);
    std::vector<uint64_t> marked(guests_.size(), 0);
    uint64_t pass = 0;
    auto last_stall_check = Clock::now();
    for (;;) {
      const int n = ::epoll_wait(ep.fd, events.data(), static_cast<int>(events.size()), 20);
      ++pass;
      for (int i = 0; i < n; ++i) {
        const uint64_t tag = events[static_cast<size_t>(i)].data.u64;
        const auto gi = static_cast<size_t>(tag / 2);
        Guest& g = *guests_[gi];
        uint64_t count;
        [[maybe_unused]] ssize_t r = ::read(
            g.frontend->queue(static_cast<unsigned>(tag % 2)).call_fd(), &count, sizeof count);
        if (marked[gi] == pass) continue;
        marked[gi] = pass;
        if (!g.dead) service(g);
      }
      const auto now = Clock::now();
      if (now - last_stall_check > std::chrono::milliseconds(100)) {
        last_stall_check = now;
        // A lost notification (ours or the backend's) would look like a stall: look at every
        // guest now and then, which also finds replies whose interrupt never came.
        bool busy = false;
        for (Guest* g : guests_) {
          if (g->dead) continue;
          service(*g);
          for (Lane& l : g->lanes) {
            if (!l.busy) continue;
            busy = true;
            if (now - l.sent > stall_limit) {
              fail(*g, "no reply to " +
                           std::string(kind_names[static_cast<unsigned>(kind_of(l.step))]) +
                           " within 10 s");
            }
          }
        }
        if (now >= window_.end && (!busy || now - window_.end > drain_limit)) break;
      }
    }
  }

  const std::array<Histogram, kind_count>& per_kind() const { return per_kind_; }

 private:
  struct UniqueEpoll {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    ~UniqueEpoll() { ::close(fd); }
  };

  void set_up(Guest& g) {
    vt::FrontendOptions fo;
    fo.regions = {{0x0, 1u << 20}, {0x100000000, 1u << 20}};
    fo.use_indirect = o_.indirect;
    fo.timeout = std::chrono::milliseconds(10000);
    fo.name = "vhost-load-" + std::to_string(g.id);
    // The server may still be starting: retry the connection for a while.
    const auto give_up = Clock::now() + std::chrono::seconds(20);
    for (;;) {
      try {
        g.frontend = std::make_unique<vt::Frontend>(g.socket, fo);
        break;
      } catch (const vt::FrontendError&) {
        if (Clock::now() > give_up) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    g.frontend->handshake();
    vt::FuseGuest fg(*g.frontend);
    fg.init();
    const std::string dir = "g" + std::to_string(g.id);
    auto made = fg.mkdir(fk::root_id, dir);
    if (made.error == EEXIST) {
      auto found = fg.lookup(fk::root_id, dir);
      if (!found.ok()) throw vt::FrontendError("LOOKUP " + dir + ": " + std::strerror(found.error));
      g.dir = found.value.nodeid;
    } else if (!made.ok()) {
      throw vt::FrontendError("MKDIR " + dir + ": " + std::strerror(made.error));
    } else {
      g.dir = made.value.nodeid;
    }
    g.lanes.resize(o_.depth);
    for (unsigned i = 0; i < o_.depth; ++i) {
      Lane& l = g.lanes[i];
      l.index = i;
      auto d = fg.opendir(g.dir);
      if (!d.ok()) throw vt::FrontendError(std::string("OPENDIR: ") + std::strerror(d.error));
      l.dir_fh = d.value.fh;
      l.data.resize(o_.io_size);
      for (size_t b = 0; b < l.data.size(); ++b)
        l.data[b] = static_cast<std::byte>((b * 131 + g.id * 7 + i) & 0xff);
    }
  }

  void submit(Guest& g, Lane& l) {
    vt::Frontend& f = *g.frontend;
    using vt::FuseGuest;
    try {
      l.sent = Clock::now();
      switch (l.step) {
        case Step::create: {
          l.name = "l" + std::to_string(l.index) + "-" + std::to_string(l.iteration);
          const uint64_t stamp[2] = {l.iteration, (uint64_t{g.id} << 32) | l.index};
          std::memcpy(l.data.data(), stamp, std::min(sizeof stamp, l.data.size()));
          l.ticket = f.submit(
              1, fk::FUSE_CREATE, g.dir,
              FuseGuest::arg(fk::fuse_create_in{O_RDWR | O_CREAT | O_EXCL, S_IFREG | 0644, 022, 0},
                             l.name),
              sizeof(fk::fuse_entry_out) + sizeof(fk::fuse_open_out));
          break;
        }
        case Step::write: {
          fk::fuse_write_in in{};
          in.fh = l.fh;
          in.size = o_.io_size;
          in.flags = O_RDWR;
          l.ticket = f.submit(1, fk::FUSE_WRITE, l.nodeid, FuseGuest::arg(in),
                              sizeof(fk::fuse_write_out), l.data);
          break;
        }
        case Step::getattr:
          l.ticket = f.submit(1, fk::FUSE_GETATTR, l.nodeid, FuseGuest::arg(fk::fuse_getattr_in{}),
                              sizeof(fk::fuse_attr_out));
          break;
        case Step::lookup:
          l.ticket = f.submit(1, fk::FUSE_LOOKUP, g.dir, bytes_of_string(l.name),
                              sizeof(fk::fuse_entry_out));
          break;
        case Step::read:
        case Step::reread: {
          fk::fuse_read_in in{};
          in.fh = l.fh;
          in.size = o_.io_size;
          in.flags = l.step == Step::read ? O_RDWR : O_RDONLY;
          l.ticket = f.submit(1, fk::FUSE_READ, l.nodeid, FuseGuest::arg(in), o_.io_size);
          break;
        }
        case Step::release:
        case Step::rerelease:
          l.ticket = f.submit(
              1, fk::FUSE_RELEASE, l.nodeid,
              FuseGuest::arg(fk::fuse_release_in{
                  l.fh, static_cast<uint32_t>(l.step == Step::release ? O_RDWR : O_RDONLY), 0, 0}),
              0);
          break;
        case Step::open:
          l.ticket =
              f.submit(1, fk::FUSE_OPEN, l.nodeid, FuseGuest::arg(fk::fuse_open_in{O_RDONLY, 0}),
                       sizeof(fk::fuse_open_out));
          break;
        case Step::readdir: {
          fk::fuse_read_in in{};
          in.fh = l.dir_fh;
          in.size = 4096;
          l.ticket = f.submit(1, fk::FUSE_READDIR, g.dir, FuseGuest::arg(in), 4096);
          break;
        }
        case Step::unlink:
          l.ticket = f.submit(1, fk::FUSE_UNLINK, g.dir, bytes_of_string(l.name), 0);
          break;
        case Step::forget:
          l.ticket =
              f.submit(0, fk::FUSE_FORGET, l.nodeid, FuseGuest::arg(fk::fuse_forget_in{2}), 0);
          break;
        case Step::count:
          break;
      }
      l.busy = true;
    } catch (const std::exception& e) {
      fail(g, std::string("submit: ") + e.what());
    }
  }

  // Checks one reply and moves the lane on; false (after fail()) when the reply is wrong.
  bool check(Guest& g, Lane& l, const vt::FuseReply& r) {
    const char* op = kind_names[static_cast<unsigned>(kind_of(l.step))];
    auto bad = [&](const std::string& why) {
      fail(g, std::string(op) + " " + l.name + ": " + why);
      return false;
    };
    if (l.step == Step::forget) {
      if (r.used_len != 0) return bad("completed with " + std::to_string(r.used_len) + " bytes");
      return true;
    }
    if (r.used_len < sizeof(fk::fuse_out_header)) return bad("no reply header");
    if (r.header.unique != l.ticket.unique) return bad("reply for another request");
    if (r.error() != 0) return bad(std::strerror(r.error()));
    switch (l.step) {
      case Step::create: {
        if (r.body.size() < sizeof(fk::fuse_entry_out) + sizeof(fk::fuse_open_out)) {
          return bad("short reply");
        }
        const auto entry = r.as<fk::fuse_entry_out>();
        fk::fuse_open_out open;
        std::memcpy(&open, r.body.data() + sizeof entry, sizeof open);
        l.nodeid = entry.nodeid;
        l.fh = open.fh;
        if (l.nodeid == 0) return bad("node 0");
        break;
      }
      case Step::write:
        if (r.as<fk::fuse_write_out>().size != o_.io_size) return bad("short write");
        break;
      case Step::getattr:
        if (r.as<fk::fuse_attr_out>().attr.size != o_.io_size) return bad("wrong size");
        break;
      case Step::lookup:
        if (r.as<fk::fuse_entry_out>().nodeid != l.nodeid) return bad("another node");
        break;
      case Step::read:
      case Step::reread:
        if (r.body.size() != l.data.size() ||
            std::memcmp(r.body.data(), l.data.data(), l.data.size()) != 0) {
          return bad("bytes differ from those written");
        }
        break;
      case Step::open:
        l.fh = r.as<fk::fuse_open_out>().fh;
        break;
      case Step::readdir: {
        bool found = false;
        size_t pos = 0;
        while (pos + sizeof(fk::fuse_dirent) <= r.body.size()) {
          fk::fuse_dirent d;
          std::memcpy(&d, r.body.data() + pos, sizeof d);
          const size_t rec = (sizeof d + d.namelen + 7) & ~size_t{7};
          if (d.namelen > 255 || pos + rec > r.body.size()) return bad("malformed dirent");
          const std::string_view name(reinterpret_cast<const char*>(r.body.data() + pos + sizeof d),
                                      d.namelen);
          found = found || name == l.name;
          pos += rec;
        }
        if (!found) return bad("the file is not listed");
        break;
      }
      default:
        break;
    }
    return true;
  }

  void complete(Guest& g, Lane& l, const vt::FuseReply& r, Clock::time_point now) {
    l.busy = false;
    if (now >= window_.begin && now < window_.end) {
      const auto ns = static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - l.sent).count());
      g.latency.add(ns);
      per_kind_[static_cast<unsigned>(kind_of(l.step))].add(ns);
      ++g.ops;
    }
    if (!check(g, l, r)) return;
    l.step = static_cast<Step>((static_cast<unsigned>(l.step) + 1) % step_count);
    if (l.step == Step::create) ++l.iteration;
    if (now < window_.end) submit(g, l);
  }

  // Collects every reply of `g` that has arrived, submitting each lane's next request, and
  // re-arms the interrupts (EVENT_IDX used_event) before returning.
  void service(Guest& g) {
    vt::Frontend& f = *g.frontend;
    for (;;) {
      bool progressed = false;
      for (Lane& l : g.lanes) {
        if (!l.busy || g.dead) continue;
        std::optional<vt::FuseReply> r;
        try {
          r = f.try_wait(l.ticket, std::chrono::milliseconds(0));
        } catch (const std::exception& e) {
          fail(g, std::string("reply: ") + e.what());
          return;
        }
        if (!r) continue;
        progressed = true;
        complete(g, l, *r, Clock::now());
      }
      if (g.dead) return;
      // try_wait arms the interrupt only when it looks at the ring; a reply it found among
      // those reaped earlier (by a submit) does not. Arm both queues here, then look once more.
      if (!progressed && !arm(f, 1) && !arm(f, 0)) return;
    }
  }

  // Asks the backend (EVENT_IDX) to signal the next used entry; true when one is already there.
  // (The frontend does this only inside its own blocking waits; this is the same store.)
  static bool arm(vt::Frontend& f, unsigned queue) {
    vt::DriverQueue& q = f.queue(queue);
    if ((f.features() & (uint64_t{1} << sandfs::vhost_user::VIRTIO_RING_F_EVENT_IDX)) == 0)
      return q.used_idx() != q.last_used_idx();
    std::byte* used_event = f.ram().host(q.avail_gpa() + 4 + 2 * uint64_t{q.size()}, 2);
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_event))
        .store(q.last_used_idx(), std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return q.used_idx() != q.last_used_idx();
  }

  const Options& o_;
  std::vector<Guest*> guests_;
  Window window_;
  std::array<Histogram, kind_count> per_kind_;
};

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// A server's CPU time (all its threads) and memory, from /proc.
struct ServerSample {
  double cpu_seconds = 0;
  uint64_t rss_kib = 0, anon_kib = 0, shmem_kib = 0;
  uint64_t pss_kib = 0;  // proportional: pages shared between processes divided among them
  bool ok = true;
};

ServerSample sample_servers(const std::vector<int>& pids) {
  ServerSample total;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (int pid : pids) {
    const std::string base = "/proc/" + std::to_string(pid);
    if (FILE* f = std::fopen((base + "/stat").c_str(), "r")) {
      char buf[1024];
      const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
      std::fclose(f);
      buf[n] = '\0';
      // Fields after the command name (which may hold spaces): state is field 3, utime 14.
      const char* p = std::strrchr(buf, ')');
      unsigned long long utime = 0, stime = 0;
      if (p == nullptr ||
          std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                      &stime) != 2) {
        total.ok = false;
      }
      total.cpu_seconds += static_cast<double>(utime + stime) / tick;
    } else {
      total.ok = false;
    }
    if (FILE* f = std::fopen((base + "/status").c_str(), "r")) {
      char line[256];
      while (std::fgets(line, sizeof line, f) != nullptr) {
        unsigned long long kib = 0;
        if (std::sscanf(line, "VmRSS: %llu", &kib) == 1) total.rss_kib += kib;
        if (std::sscanf(line, "RssAnon: %llu", &kib) == 1) total.anon_kib += kib;
        if (std::sscanf(line, "RssShmem: %llu", &kib) == 1) total.shmem_kib += kib;
      }
      std::fclose(f);
    } else {
      total.ok = false;
    }
    if (FILE* f = std::fopen((base + "/smaps_rollup").c_str(), "r")) {
      char line[256];
      while (std::fgets(line, sizeof line, f) != nullptr) {
        unsigned long long kib = 0;
        if (std::sscanf(line, "Pss: %llu", &kib) == 1) total.pss_kib += kib;
      }
      std::fclose(f);
    }
  }
  return total;
}

double parse_number(const char* flag, const char* value) {
  char* end = nullptr;
  const double v = std::strtod(value, &end);
  if (end == value || *end != '\0' || !(v >= 0)) {
    std::fprintf(stderr, "vhost_load: %s: not a number: %s\n", flag, value);
    std::exit(2);
  }
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--seconds") {
      o.seconds = parse_number("--seconds", value());
    } else if (a == "--warmup") {
      o.warmup = parse_number("--warmup", value());
    } else if (a == "--depth") {
      o.depth = static_cast<unsigned>(parse_number("--depth", value()));
    } else if (a == "--client-threads") {
      o.client_threads = static_cast<unsigned>(parse_number("--client-threads", value()));
    } else if (a == "--io-size") {
      o.io_size = static_cast<uint32_t>(parse_number("--io-size", value()));
    } else if (a == "--server-pids") {
      // A comma-separated list.
      std::string_view list = value();
      while (!list.empty()) {
        const size_t comma = std::min(list.find(','), list.size());
        const std::string one(list.substr(0, comma));
        o.server_pids.push_back(static_cast<int>(parse_number("--server-pids", one.c_str())));
        list.remove_prefix(std::min(comma + 1, list.size()));
      }
    } else if (a == "--per-guest") {
      o.per_guest = true;
    } else if (a == "--direct-descriptors") {
      o.indirect = false;
    } else if (a.starts_with("-")) {
      usage();
    } else {
      o.sockets.emplace_back(a);
    }
  }
  if (o.sockets.empty() || o.depth < 1 || o.depth > 16 || o.client_threads < 1 || o.seconds <= 0 ||
      o.io_size < 1 || o.io_size > 256 * 1024) {
    usage();
  }
  o.client_threads = std::min<unsigned>(o.client_threads, static_cast<unsigned>(o.sockets.size()));
  return o;
}

double us(double ns) {
  return ns / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  // Seven descriptors per guest (socket, two memfds, four eventfds): 256 guests need more than
  // the usual soft limit of 1,024.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  std::vector<Guest> guests(o.sockets.size());
  for (size_t i = 0; i < guests.size(); ++i) {
    guests[i].id = static_cast<unsigned>(i);
    guests[i].socket = o.sockets[i];
  }
  std::vector<std::unique_ptr<Client>> clients;
  for (unsigned t = 0; t < o.client_threads; ++t) {
    std::vector<Guest*> mine;
    for (size_t i = t; i < guests.size(); i += o.client_threads)
      mine.push_back(&guests[i]);
    clients.push_back(std::make_unique<Client>(o, std::move(mine)));
  }

  // Everyone sets up, then one clock for all: submissions start together, counting begins
  // after the warm-up.
  Window window;
  const auto setup_start = Clock::now();
  std::barrier ready(static_cast<std::ptrdiff_t>(o.client_threads) + 1, []() noexcept {});
  std::vector<std::thread> threads;
  for (auto& c : clients) {
    threads.emplace_back([&ready, &window, client = c.get()] {
      client->set_up();
      ready.arrive_and_wait();  // set-up done
      ready.arrive_and_wait();  // window set
      client->run(window);
    });
  }
  ready.arrive_and_wait();
  const double setup_seconds = std::chrono::duration<double>(Clock::now() - setup_start).count();
  window.start = Clock::now() + std::chrono::milliseconds(20);
  window.begin = window.start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.warmup));
  window.end = window.begin + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(o.seconds));
  ready.arrive_and_wait();
  std::this_thread::sleep_until(window.begin);
  const double cpu0 = cpu_seconds();
  const ServerSample server0 = sample_servers(o.server_pids);
  std::this_thread::sleep_until(window.end);
  const double cpu1 = cpu_seconds();
  // Every guest is still connected and has its files and handles open.
  const ServerSample server1 = sample_servers(o.server_pids);
  for (auto& t : threads)
    t.join();
  const double client_cpu = (cpu1 - cpu0) / o.seconds;
  const double server_cpu = (server1.cpu_seconds - server0.cpu_seconds) / o.seconds;

  Histogram all;
  std::array<Histogram, kind_count> per_kind;
  for (auto& c : clients) {
    for (unsigned k = 0; k < kind_count; ++k)
      per_kind[k].merge(c->per_kind()[k]);
  }
  uint64_t total_ops = 0, errors = 0, min_ops = UINT64_MAX, max_ops = 0;
  double worst_p99 = 0, worst_p50 = 0;
  for (Guest& g : guests) {
    all.merge(g.latency);
    total_ops += g.ops;
    errors += g.errors;
    min_ops = std::min(min_ops, g.ops);
    max_ops = std::max(max_ops, g.ops);
    worst_p99 = std::max(worst_p99, g.latency.quantile(0.99));
    worst_p50 = std::max(worst_p50, g.latency.quantile(0.50));
  }
  const double ops_per_s = static_cast<double>(total_ops) / o.seconds;
  const double fairness =
      max_ops == 0 ? 0 : static_cast<double>(min_ops) / static_cast<double>(max_ops);

  std::printf(
      "vhost_load: %zu guests, %u requests in flight each, %u client thread%s, %.1f s measured "
      "after %.1f s warm-up, %u-byte I/O, %s descriptors, set-up %.2f s\n",
      guests.size(), o.depth, o.client_threads, o.client_threads == 1 ? "" : "s", o.seconds,
      o.warmup, o.io_size, o.indirect ? "indirect" : "direct", setup_seconds);
  std::printf("%6s %12s %9s %9s %14s %14s %9s %7s %10s\n", "guests", "ops/s", "p50 us", "p99 us",
              "worst p50 us", "worst p99 us", "min/max", "errors", "client CPU");
  std::printf("%6zu %12.0f %9.1f %9.1f %14.1f %14.1f %9.3f %7" PRIu64 " %10.2f\n", guests.size(),
              ops_per_s, us(all.quantile(0.5)), us(all.quantile(0.99)), us(worst_p50),
              us(worst_p99), fairness, errors, client_cpu);
  std::printf("per opcode: %-8s %10s %9s %9s\n", "op", "count", "p50 us", "p99 us");
  for (unsigned k = 0; k < kind_count; ++k) {
    std::printf("            %-8s %10" PRIu64 " %9.1f %9.1f\n", kind_names[k], per_kind[k].total(),
                us(per_kind[k].quantile(0.5)), us(per_kind[k].quantile(0.99)));
  }
  {
    // How the guests' shares spread: quantiles of per-guest ops.
    std::vector<uint64_t> shares;
    for (const Guest& g : guests)
      shares.push_back(g.ops);
    std::sort(shares.begin(), shares.end());
    auto at = [&](double q) {
      return shares[static_cast<size_t>(q * static_cast<double>(shares.size() - 1) + 0.5)];
    };
    std::printf("per-guest ops: min %" PRIu64 ", p10 %" PRIu64 ", median %" PRIu64 ", p90 %" PRIu64
                ", max %" PRIu64 "\n",
                at(0), at(0.1), at(0.5), at(0.9), at(1));
  }
  if (o.per_guest) {
    for (const Guest& g : guests) {
      std::printf("guest %u: %" PRIu64 " ops, p50 %.1f us, p99 %.1f us\n", g.id, g.ops,
                  us(g.latency.quantile(0.5)), us(g.latency.quantile(0.99)));
    }
  }
  if (!o.server_pids.empty()) {
    std::printf(
        "server (%zu process%s): CPU %.2f cores; at the end of the window RSS %.1f MiB (%.0f KiB "
        "per guest), of which anonymous %.1f MiB and shared (guest RAM, rings) %.1f MiB; PSS "
        "%.1f MiB (%.0f KiB per guest)%s\n",
        o.server_pids.size(), o.server_pids.size() == 1 ? "" : "es", server_cpu,
        static_cast<double>(server1.rss_kib) / 1024,
        static_cast<double>(server1.rss_kib) / static_cast<double>(guests.size()),
        static_cast<double>(server1.anon_kib) / 1024, static_cast<double>(server1.shmem_kib) / 1024,
        static_cast<double>(server1.pss_kib) / 1024,
        static_cast<double>(server1.pss_kib) / static_cast<double>(guests.size()),
        server1.ok && server0.ok ? "" : " (some processes could not be read)");
  }
  unsigned shown = 0;
  for (Guest& g : guests) {
    if (g.errors == 0) continue;
    if (shown++ < 10) {
      std::fprintf(stderr, "vhost_load: guest %u (%s): %s\n", g.id, g.socket.c_str(),
                   g.first_error.c_str());
    }
  }
  if (shown > 10)
    std::fprintf(stderr, "vhost_load: ... and %u more guests with errors\n", shown - 10);
  std::printf("result guests=%zu depth=%u seconds=%.1f ops=%" PRIu64
              " ops_per_s=%.0f p50_us=%.1f p99_us=%.1f worst_p50_us=%.1f worst_p99_us=%.1f "
              "min_ops=%" PRIu64 " max_ops=%" PRIu64 " fairness=%.3f errors=%" PRIu64
              " client_cpu=%.2f server_cpu=%.2f server_rss_kib=%" PRIu64 " server_anon_kib=%" PRIu64
              " server_shmem_kib=%" PRIu64 " server_pss_kib=%" PRIu64 " server_read=%d\n",
              guests.size(), o.depth, o.seconds, total_ops, ops_per_s, us(all.quantile(0.5)),
              us(all.quantile(0.99)), us(worst_p50), us(worst_p99), min_ops, max_ops, fairness,
              errors, client_cpu, server_cpu, server1.rss_kib, server1.anon_kib, server1.shmem_kib,
              server1.pss_kib, o.server_pids.empty() ? 0 : (server0.ok && server1.ok ? 1 : 0));
  return errors == 0 && total_ops > 0 ? 0 : 1;
}
