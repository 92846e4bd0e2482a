#include "support/vhost_user_frontend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <system_error>

namespace sandfs::test::vhost {

namespace vu = sandfs::vhost_user;
using Clock = std::chrono::steady_clock;
using namespace sandfs::fuse;

namespace {

[[noreturn]] void fail_errno(const std::string& what) {
  throw FrontendError(what + ": " + std::system_category().message(errno));
}

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

// The ring fields the backend reads or writes concurrently go through atomics, as a driver's do.
template <class T>
T load(const std::byte* p, std::memory_order order) {
  return std::atomic_ref<T>(*reinterpret_cast<T*>(const_cast<std::byte*>(p))).load(order);
}
template <class T>
void store(std::byte* p, T value, std::memory_order order) {
  std::atomic_ref<T>(*reinterpret_cast<T*>(p)).store(value, order);
}

template <class T>
std::span<const std::byte> bytes_of(const T& value) {
  return std::as_bytes(std::span<const T>(&value, 1));
}

}  // namespace

// ---- GuestRam -----------------------------------------------------------------------------------

GuestRam::GuestRam(std::span<const RegionSpec> regions, const std::string& name) {
  for (const RegionSpec& spec : regions) {
    Region r;
    r.guest_phys_addr = spec.guest_phys_addr;
    r.size = spec.size;
    r.fd.reset(::memfd_create(name.c_str(), MFD_CLOEXEC));
    if (!r.fd) fail_errno("memfd_create");
    if (::ftruncate(r.fd.get(), static_cast<off_t>(spec.size)) != 0) fail_errno("ftruncate");
    void* p = ::mmap(nullptr, spec.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd.get(), 0);
    if (p == MAP_FAILED) fail_errno("mmap guest RAM");
    r.host = static_cast<std::byte*>(p);
    Arena arena;
    arena.free.emplace(spec.guest_phys_addr, spec.size);
    regions_.push_back(std::move(r));
    arenas_.push_back(std::move(arena));
  }
}

GuestRam::~GuestRam() {
  for (Region& r : regions_)
    ::munmap(r.host, r.size);
}

std::byte* GuestRam::host(uint64_t gpa, size_t len) const {
  for (const Region& r : regions_) {
    if (gpa >= r.guest_phys_addr && gpa - r.guest_phys_addr <= r.size &&
        len <= r.size - (gpa - r.guest_phys_addr)) {
      return r.host + (gpa - r.guest_phys_addr);
    }
  }
  throw std::out_of_range("GuestRam: " + std::to_string(len) + " bytes at guest address " +
                          std::to_string(gpa) + " are not guest RAM");
}

uint64_t GuestRam::user_addr(uint64_t gpa) const {
  return reinterpret_cast<uint64_t>(host(gpa, 0));
}

void GuestRam::write(uint64_t gpa, std::span<const std::byte> bytes) const {
  if (!bytes.empty()) std::memcpy(host(gpa, bytes.size()), bytes.data(), bytes.size());
}

void GuestRam::read(uint64_t gpa, std::span<std::byte> out) const {
  if (!out.empty()) std::memcpy(out.data(), host(gpa, out.size()), out.size());
}

std::optional<uint64_t> GuestRam::try_alloc(size_t len, size_t align,
                                            std::optional<size_t> region) {
  len = std::max<size_t>(len, 1);
  for (size_t k = 0; k < arenas_.size(); ++k) {
    const size_t i = region ? *region : (next_region_ + k) % arenas_.size();
    auto& free = arenas_[i].free;
    for (auto it = free.begin(); it != free.end(); ++it) {
      const uint64_t start = it->first, flen = it->second;
      const uint64_t at = align_up(start, align);
      if (at - start > flen || len > flen - (at - start)) continue;
      free.erase(it);
      if (at > start) free.emplace(start, at - start);
      if (at + len < start + flen) free.emplace(at + len, start + flen - (at + len));
      allocated_.emplace(at, std::make_pair(uint64_t{i}, uint64_t{len}));
      if (!region) next_region_ = (i + 1) % arenas_.size();
      return at;
    }
    if (region) break;
  }
  return std::nullopt;
}

uint64_t GuestRam::alloc(size_t len, size_t align, std::optional<size_t> region) {
  auto at = try_alloc(len, align, region);
  if (!at) throw FrontendError("guest RAM full (" + std::to_string(len) + " bytes wanted)");
  return *at;
}

void GuestRam::free(uint64_t gpa) {
  auto a = allocated_.find(gpa);
  if (a == allocated_.end()) throw std::logic_error("GuestRam::free: not allocated");
  auto& free = arenas_[a->second.first].free;
  uint64_t start = gpa, len = a->second.second;
  allocated_.erase(a);
  auto next = free.lower_bound(start);
  if (next != free.end() && next->first == start + len) {
    len += next->second;
    next = free.erase(next);
  }
  if (next != free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      free.erase(prev);
    }
  }
  free.emplace(start, len);
}

// ---- DriverQueue ------------------------------------------------------------------------------

DriverQueue::DriverQueue(GuestRam& ram, unsigned index, uint16_t size, bool event_idx)
    : ram_(ram), index_(index), size_(size), event_idx_(event_idx) {
  // Rings in the first region, each on its own page like a Linux driver's.
  desc_gpa_ = ram_.alloc(vu::vring_desc_bytes(size), 4096, 0);
  avail_gpa_ = ram_.alloc(vu::vring_avail_bytes(size, true), 4096, 0);
  used_gpa_ = ram_.alloc(vu::vring_used_bytes(size, true), 4096, 0);
  std::memset(ram_.host(desc_gpa_, 0), 0, vu::vring_desc_bytes(size));
  std::memset(ram_.host(avail_gpa_, 0), 0, vu::vring_avail_bytes(size, true));
  std::memset(ram_.host(used_gpa_, 0), 0, vu::vring_used_bytes(size, true));
  kick_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  call_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kick_ || !call_) fail_errno("eventfd");
  for (uint32_t i = size; i-- > 0;)
    free_.push_back(static_cast<uint16_t>(i));
}

DriverQueue::~DriverQueue() {
  ram_.free(desc_gpa_);
  ram_.free(avail_gpa_);
  ram_.free(used_gpa_);
}

void DriverQueue::write_desc(uint16_t index, const vu::vring_desc& d) {
  if (index >= size_) throw std::out_of_range("DriverQueue::write_desc: index past the table");
  ram_.write(desc_gpa_ + 16 * uint64_t{index}, bytes_of(d));
}

std::optional<std::vector<uint16_t>> DriverQueue::take_descriptors(size_t count) {
  if (count > free_.size()) return std::nullopt;
  std::vector<uint16_t> out(free_.end() - static_cast<ptrdiff_t>(count), free_.end());
  std::reverse(out.begin(), out.end());
  free_.resize(free_.size() - count);
  return out;
}

void DriverQueue::give_back(std::span<const uint16_t> indices) {
  for (uint16_t i : indices)
    free_.push_back(i);
}

std::optional<uint16_t> DriverQueue::add_chain(std::span<const Buffer> buffers, bool indirect) {
  if (buffers.empty()) throw std::invalid_argument("DriverQueue::add_chain: no buffers");
  auto link = [&](size_t i) {
    const Buffer& b = buffers[i];
    uint16_t flags = b.writable ? vu::VRING_DESC_F_WRITE : 0;
    if (i + 1 < buffers.size()) flags |= vu::VRING_DESC_F_NEXT;
    return std::make_pair(b, flags);
  };
  Tracked t;
  if (indirect) {
    auto table = ram_.try_alloc(16 * buffers.size(), 16);
    if (!table) return std::nullopt;
    auto head = take_descriptors(1);
    if (!head) {
      ram_.free(*table);
      return std::nullopt;
    }
    for (size_t i = 0; i < buffers.size(); ++i) {
      auto [b, flags] = link(i);
      const vu::vring_desc d{b.gpa, b.len, flags, static_cast<uint16_t>(i + 1)};
      ram_.write(*table + 16 * i, bytes_of(d));
    }
    write_desc((*head)[0], vu::vring_desc{*table, static_cast<uint32_t>(16 * buffers.size()),
                                          vu::VRING_DESC_F_INDIRECT, 0});
    t.descs = std::move(*head);
    t.indirect_table = table;
  } else {
    auto descs = take_descriptors(buffers.size());
    if (!descs) return std::nullopt;
    for (size_t i = 0; i < buffers.size(); ++i) {
      auto [b, flags] = link(i);
      const uint16_t next = i + 1 < buffers.size() ? (*descs)[i + 1] : 0;
      write_desc((*descs)[i], vu::vring_desc{b.gpa, b.len, flags, next});
    }
    t.descs = std::move(*descs);
  }
  const uint16_t head = t.descs[0];
  tracked_[head] = std::move(t);
  return head;
}

void DriverQueue::publish(uint16_t head) {
  std::byte* avail = ram_.host(avail_gpa_, vu::vring_avail_bytes(size_, true));
  store<uint16_t>(avail + 4 + 2 * (avail_idx_ % size_), head, std::memory_order_relaxed);
  ++avail_idx_;
  // Release: the descriptors and the slot are visible before the index that offers them.
  store<uint16_t>(avail + 2, avail_idx_, std::memory_order_release);
}

void DriverQueue::set_avail_idx(uint16_t idx) {
  avail_idx_ = idx;
  store<uint16_t>(ram_.host(avail_gpa_ + 2, 2), idx, std::memory_order_release);
}

uint16_t DriverQueue::used_idx() const {
  return load<uint16_t>(ram_.host(used_gpa_ + 2, 2), std::memory_order_acquire);
}

bool DriverQueue::kick(bool force) {
  const uint16_t old_idx = kicked_avail_;
  kicked_avail_ = avail_idx_;
  // Store-load: our avail->idx must be visible before we read the backend's suppression state,
  // or a backend that just re-enabled kicks and found nothing new would sleep forever.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool needed;
  if (event_idx_) {
    const uint16_t avail_event = load<uint16_t>(ram_.host(used_gpa_ + 4 + 8 * uint64_t{size_}, 2),
                                                std::memory_order_relaxed);
    needed = vu::vring_need_event(avail_event, avail_idx_, old_idx);
  } else {
    const uint16_t flags = load<uint16_t>(ram_.host(used_gpa_, 2), std::memory_order_relaxed);
    needed = (flags & vu::VRING_USED_F_NO_NOTIFY) == 0 && avail_idx_ != old_idx;
  }
  if (!needed && !force) return false;
  const uint64_t one = 1;
  if (::write(kick_.get(), &one, sizeof one) != sizeof one && kick_.valid()) {
    fail_errno("kick eventfd");
  }
  return true;
}

void DriverQueue::harvest() {
  const std::byte* used = ram_.host(used_gpa_, vu::vring_used_bytes(size_, true));
  const uint16_t idx = used_idx();
  while (last_used_ != idx) {
    const std::byte* e = used + 4 + 8 * uint64_t{static_cast<uint16_t>(last_used_ % size_)};
    vu::vring_used_elem elem{load<uint32_t>(e, std::memory_order_relaxed),
                             load<uint32_t>(e + 4, std::memory_order_relaxed)};
    ++last_used_;
    auto t = elem.id < size_ ? tracked_.find(static_cast<uint16_t>(elem.id)) : tracked_.end();
    if (t == tracked_.end()) {
      raw_used_.push_back(elem);
      continue;
    }
    give_back(t->second.descs);
    if (t->second.indirect_table) ram_.free(*t->second.indirect_table);
    tracked_.erase(t);
    completed_[static_cast<uint16_t>(elem.id)] = elem.len;
  }
}

void DriverQueue::arm_interrupt() {
  if (event_idx_) {
    store<uint16_t>(ram_.host(avail_gpa_ + 4 + 2 * uint64_t{size_}, 2), last_used_,
                    std::memory_order_relaxed);
  }
  // Store-load: the request is visible before the caller looks at the used ring again.
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

bool DriverQueue::wait_for_used(Clock::time_point deadline) {
  for (;;) {
    if (used_idx() != last_used_) return true;
    if (event_idx_) {
      arm_interrupt();
      if (used_idx() != last_used_) return true;
    }
    const int ms = remaining_ms(deadline);
    if (ms == 0) return false;
    pollfd p{call_.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, ms);
    if (n < 0 && errno != EINTR) fail_errno("poll call eventfd");
    if (n > 0) {
      uint64_t count;
      [[maybe_unused]] const ssize_t r = ::read(call_.get(), &count, sizeof count);
    }
  }
}

// ---- Frontend ---------------------------------------------------------------------------------

Frontend::Frontend(const std::string& socket_path, FrontendOptions options)
    : options_(std::move(options)), ram_(options_.regions, options_.name) {
  socket_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!socket_) fail_errno("socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) throw FrontendError("socket path too long");
  socket_path.copy(addr.sun_path, sizeof addr.sun_path - 1);
  if (::connect(socket_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    fail_errno("connect to " + socket_path);
  }
  for (unsigned i = 0; i <= options_.request_queues; ++i) {
    queues_.push_back(
        std::make_unique<DriverQueue>(ram_, i, options_.queue_size, options_.event_idx));
  }
}

Frontend::~Frontend() {
  // The rings live in ram_, which is destroyed after them (declared before queues_).
  queues_.clear();
}

DriverQueue& Frontend::queue(unsigned index) {
  if (index >= queues_.size()) throw std::out_of_range("Frontend::queue: no such queue");
  return *queues_[index];
}

void Frontend::disconnect() {
  socket_.reset();
}

std::vector<uint32_t> Frontend::shutdown() {
  std::vector<uint32_t> bases;
  for (unsigned q = 0; q < queues_.size(); ++q)
    bases.push_back(get_vring_base(q));
  disconnect();
  return bases;
}

// ---- raw messages ----

void Frontend::send_bytes(std::span<const std::byte> bytes, std::span<const int> fds) {
  if (!socket_) throw FrontendError("not connected");
  if (fds.size() > 253) throw std::invalid_argument("too many fds for one message");
  size_t sent = 0;
  bool with_fds = !fds.empty();
  std::vector<char> control(with_fds ? CMSG_SPACE(sizeof(int) * fds.size()) : 0);
  do {
    iovec iov{const_cast<std::byte*>(bytes.data()) + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (with_fds) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("sendmsg");
    sent += static_cast<size_t>(n);
    with_fds = false;
  } while (sent < bytes.size());
}

void Frontend::send_message(uint32_t request, uint32_t flags, std::span<const std::byte> payload,
                            std::span<const int> fds, std::optional<uint32_t> size) {
  const vu::MessageHeader h{request, flags, size ? *size : static_cast<uint32_t>(payload.size())};
  std::vector<std::byte> bytes(sizeof h + payload.size());
  std::memcpy(bytes.data(), &h, sizeof h);
  if (!payload.empty()) std::memcpy(bytes.data() + sizeof h, payload.data(), payload.size());
  send_bytes(bytes, fds);
}

Received Frontend::receive(std::optional<Milliseconds> timeout) {
  Received out;
  if (!socket_) {
    out.status = Received::Status::closed;
    return out;
  }
  const auto deadline = Clock::now() + timeout.value_or(options_.timeout);
  // Reads exactly `size` bytes; false on timeout or close (out.status says which).
  auto read_exact = [&](std::byte* dst, size_t size, bool take_fds) {
    size_t got = 0;
    while (got < size) {
      pollfd p{socket_.get(), POLLIN, 0};
      const int ready = ::poll(&p, 1, remaining_ms(deadline));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) fail_errno("poll");
      if (ready == 0) {
        out.status = Received::Status::timeout;
        return false;
      }
      iovec iov{dst + got, size - got};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)];
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      if (take_fds && got == 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
      }
      const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == ECONNRESET) {
        out.status = Received::Status::closed;
        return false;
      }
      if (n < 0) fail_errno("recvmsg");
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); msg.msg_control && c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          out.fds.emplace_back(fd);
        }
      }
      if (n == 0) {
        out.status = Received::Status::closed;
        return false;
      }
      got += static_cast<size_t>(n);
    }
    return true;
  };
  if (!read_exact(reinterpret_cast<std::byte*>(&out.header), sizeof out.header, true)) return out;
  if (out.header.size > 4096) {
    throw FrontendError("backend sent a " + std::to_string(out.header.size) + "-byte payload");
  }
  out.payload.resize(out.header.size);
  if (!read_exact(out.payload.data(), out.payload.size(), false)) {
    // A message cut off by a close is a close; by a timeout, a broken backend.
    if (out.status == Received::Status::timeout) throw FrontendError("backend sent half a reply");
    return out;
  }
  out.status = Received::Status::message;
  return out;
}

bool Frontend::wait_closed(std::optional<Milliseconds> timeout) {
  const auto deadline = Clock::now() + timeout.value_or(options_.timeout);
  for (;;) {
    Received r = receive(std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()));
    if (r.status == Received::Status::closed) return true;
    if (r.status == Received::Status::timeout) return false;
  }
}

Received Frontend::expect_reply(vu::Request request) {
  Received r = receive();
  const char* name = vu::request_name(static_cast<uint32_t>(request));
  if (r.status == Received::Status::closed) {
    throw FrontendError(std::string("backend closed the connection instead of answering ") + name);
  }
  if (r.status == Received::Status::timeout) {
    throw FrontendError(std::string("no answer to ") + name);
  }
  if (r.header.request != static_cast<uint32_t>(request) ||
      (r.header.flags & vu::flag_reply) == 0 ||
      (r.header.flags & vu::version_mask) != vu::version) {
    throw FrontendError(std::string("answer to ") + name + " has request " +
                        std::to_string(r.header.request) + " flags " +
                        std::to_string(r.header.flags));
  }
  return r;
}

uint64_t Frontend::expect_u64(vu::Request request) {
  Received r = expect_reply(request);
  if (r.payload.size() != sizeof(uint64_t)) {
    throw FrontendError(std::string(vu::request_name(static_cast<uint32_t>(request))) +
                        " answered with " + std::to_string(r.payload.size()) + " bytes");
  }
  uint64_t v;
  std::memcpy(&v, r.payload.data(), sizeof v);
  return v;
}

uint64_t Frontend::send_with_ack(vu::Request request, std::span<const std::byte> payload,
                                 std::span<const int> fds) {
  send_message(static_cast<uint32_t>(request), vu::version | vu::flag_need_reply, payload, fds);
  return expect_u64(request);
}

void Frontend::send_expecting_ack(vu::Request request, std::span<const std::byte> payload,
                                  std::span<const int> fds) {
  if (!acks()) {
    send_message(static_cast<uint32_t>(request), vu::version, payload, fds);
    return;
  }
  if (const uint64_t status = send_with_ack(request, payload, fds); status != 0) {
    throw FrontendError(std::string("backend refused ") +
                        vu::request_name(static_cast<uint32_t>(request)) + " (status " +
                        std::to_string(status) + ")");
  }
}

// ---- control messages ----

uint64_t Frontend::get_features() {
  send_message(static_cast<uint32_t>(vu::Request::get_features), vu::version, {});
  return expect_u64(vu::Request::get_features);
}

void Frontend::set_features(uint64_t features) {
  send_expecting_ack(vu::Request::set_features, bytes_of(features));
  features_ = features;
}

uint64_t Frontend::get_protocol_features() {
  send_message(static_cast<uint32_t>(vu::Request::get_protocol_features), vu::version, {});
  return expect_u64(vu::Request::get_protocol_features);
}

void Frontend::set_protocol_features(uint64_t features) {
  // No ack: REPLY_ACK is not in force until this message has been handled.
  send_message(static_cast<uint32_t>(vu::Request::set_protocol_features), vu::version,
               bytes_of(features));
  protocol_features_ = features;
}

uint64_t Frontend::get_queue_num() {
  send_message(static_cast<uint32_t>(vu::Request::get_queue_num), vu::version, {});
  return expect_u64(vu::Request::get_queue_num);
}

void Frontend::set_owner() {
  send_expecting_ack(vu::Request::set_owner, {});
}

void Frontend::reset_owner() {
  send_expecting_ack(vu::Request::reset_owner, {});
}

void Frontend::set_mem_table() {
  vu::MemoryTable table{};
  std::vector<int> fds;
  const auto& regions = ram_.regions();
  if (regions.size() > vu::max_mem_regions) throw std::invalid_argument("too many regions");
  table.nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    table.regions[i] = vu::MemoryRegion{regions[i].guest_phys_addr, regions[i].size,
                                        reinterpret_cast<uint64_t>(regions[i].host), 0};
    fds.push_back(regions[i].fd.get());
  }
  const size_t size = 8 + regions.size() * sizeof(vu::MemoryRegion);
  send_expecting_ack(vu::Request::set_mem_table, bytes_of(table).first(size), fds);
}

void Frontend::set_vring_num(unsigned q, uint32_t num) {
  send_expecting_ack(vu::Request::set_vring_num, bytes_of(vu::VringState{q, num}));
}

void Frontend::set_vring_base(unsigned q, uint32_t base) {
  send_expecting_ack(vu::Request::set_vring_base, bytes_of(vu::VringState{q, base}));
}

void Frontend::set_vring_addr(unsigned q) {
  DriverQueue& dq = queue(q);
  set_vring_addr(vu::VringAddr{q, 0, ram_.user_addr(dq.desc_gpa()), ram_.user_addr(dq.used_gpa()),
                               ram_.user_addr(dq.avail_gpa()), 0});
}

void Frontend::set_vring_addr(const vu::VringAddr& addr) {
  send_expecting_ack(vu::Request::set_vring_addr, bytes_of(addr));
}

void Frontend::set_vring_kick(unsigned q) {
  const uint64_t payload = q;
  const int fd = queue(q).kick_fd();
  send_expecting_ack(vu::Request::set_vring_kick, bytes_of(payload), std::span(&fd, 1));
}

void Frontend::set_vring_call(unsigned q) {
  const uint64_t payload = q;
  const int fd = queue(q).call_fd();
  send_expecting_ack(vu::Request::set_vring_call, bytes_of(payload), std::span(&fd, 1));
}

void Frontend::set_vring_enable(unsigned q, bool enable) {
  send_expecting_ack(vu::Request::set_vring_enable, bytes_of(vu::VringState{q, enable ? 1u : 0u}));
}

uint32_t Frontend::get_vring_base(unsigned q) {
  send_message(static_cast<uint32_t>(vu::Request::get_vring_base), vu::version,
               bytes_of(vu::VringState{q, 0}));
  Received r = expect_reply(vu::Request::get_vring_base);
  vu::VringState s{};
  if (r.payload.size() != sizeof s) throw FrontendError("GET_VRING_BASE answer of wrong size");
  std::memcpy(&s, r.payload.data(), sizeof s);
  if (s.index != q) throw FrontendError("GET_VRING_BASE answered for another vring");
  return s.num;
}

void Frontend::start_queue(unsigned q, uint16_t base) {
  set_vring_num(q, queue(q).size());
  set_vring_base(q, base);
  set_vring_addr(q);
  set_vring_kick(q);
  set_vring_call(q);
  if ((features_ & vu::vhost_user_f_protocol_features) != 0) set_vring_enable(q, true);
}

void Frontend::handshake() {
  const uint64_t offered = get_features();
  uint64_t want = vu::virtio_f_version_1 | vu::vhost_user_f_protocol_features;
  if (options_.event_idx) want |= vu::virtio_ring_f_event_idx;
  if (options_.indirect_desc) want |= vu::virtio_ring_f_indirect_desc;
  const uint64_t features = offered & want;
  if ((features & vu::virtio_f_version_1) == 0) throw FrontendError("no VIRTIO_F_VERSION_1");
  if (options_.event_idx && (features & vu::virtio_ring_f_event_idx) == 0) {
    throw FrontendError("EVENT_IDX wanted but not offered");  // the rings were laid out for it
  }
  if (options_.use_indirect && (features & vu::virtio_ring_f_indirect_desc) == 0) {
    throw FrontendError("INDIRECT_DESC wanted but not offered");
  }
  if ((features & vu::vhost_user_f_protocol_features) != 0) {
    const uint64_t offered_protocol = get_protocol_features();
    uint64_t want_protocol = vu::protocol_f_mq;
    if (options_.reply_ack) want_protocol |= vu::protocol_f_reply_ack;
    set_protocol_features(offered_protocol & want_protocol);
    if ((protocol_features_ & vu::protocol_f_mq) != 0) {
      const uint64_t n = get_queue_num();
      if (n < queues_.size()) {
        throw FrontendError("backend offers " + std::to_string(n) + " queues, " +
                            std::to_string(queues_.size()) + " wanted");
      }
    }
  }
  set_owner();
  set_features(features);
  set_mem_table();
  for (unsigned q = 0; q < queues_.size(); ++q)
    start_queue(q);
}

// ---- FUSE requests ----

Ticket Frontend::submit(unsigned q, uint32_t opcode, uint64_t nodeid,
                        std::span<const std::byte> args, size_t reply_capacity,
                        std::span<const std::byte> data) {
  DriverQueue& dq = queue(q);
  const bool no_reply = opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET;
  const uint64_t unique = next_unique_++;
  fuse_in_header in{};
  in.len = static_cast<uint32_t>(sizeof in + args.size() + data.size());
  in.opcode = opcode;
  in.unique = unique;
  in.nodeid = nodeid;
  in.pid = 1;

  Pending p{q, 0, {}, std::nullopt, std::nullopt, no_reply ? 0 : reply_capacity};
  std::vector<Buffer> buffers;
  auto give = [&](size_t len, bool writable) {
    const uint64_t gpa = ram_.alloc(len);
    p.allocations.push_back(gpa);
    buffers.push_back(Buffer{gpa, static_cast<uint32_t>(len), writable});
    return gpa;
  };
  try {
    const uint64_t in_gpa = give(sizeof in + args.size(), false);
    ram_.write(in_gpa, bytes_of(in));
    ram_.write(in_gpa + sizeof in, args);
    if (!data.empty()) ram_.write(give(data.size(), false), data);
    if (!no_reply) {
      p.out_gpa = give(sizeof(fuse_out_header), true);
      if (reply_capacity > 0) p.reply_gpa = give(reply_capacity, true);
    }
  } catch (...) {
    for (uint64_t gpa : p.allocations)
      ram_.free(gpa);
    throw;
  }

  const auto deadline = Clock::now() + options_.timeout;
  std::optional<uint16_t> head;
  for (;;) {
    reap(q);
    head = dq.add_chain(buffers, options_.use_indirect);
    if (head) break;
    if (!dq.wait_for_used(deadline)) {
      for (uint64_t gpa : p.allocations)
        ram_.free(gpa);
      throw FrontendError("queue " + std::to_string(q) + " stayed full");
    }
  }
  p.head = *head;
  pending_.emplace(unique, std::move(p));
  by_head_[{q, *head}] = unique;
  dq.publish(*head);
  dq.kick(options_.always_kick);
  return Ticket{unique};
}

void Frontend::reap(unsigned q) {
  DriverQueue& dq = queue(q);
  dq.harvest();
  for (const auto& [head, len] : dq.completed()) {
    auto h = by_head_.find({q, head});
    if (h == by_head_.end()) continue;
    const uint64_t unique = h->second;
    by_head_.erase(h);
    done_.emplace(unique, collect(unique, len));
  }
  dq.completed().clear();
}

FuseReply Frontend::collect(uint64_t unique, uint32_t used_len) {
  auto it = pending_.find(unique);
  Pending p = std::move(it->second);
  pending_.erase(it);
  FuseReply r;
  r.used_len = used_len;
  if (p.out_gpa && used_len >= sizeof(fuse_out_header)) {
    ram_.read(*p.out_gpa, std::as_writable_bytes(std::span(&r.header, 1)));
    const size_t body = std::min<size_t>(used_len - sizeof(fuse_out_header), p.reply_capacity);
    r.body.resize(body);
    if (body > 0) ram_.read(*p.reply_gpa, r.body);
  }
  for (uint64_t gpa : p.allocations)
    ram_.free(gpa);
  return r;
}

std::optional<FuseReply> Frontend::try_wait(Ticket ticket, Milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto d = done_.find(ticket.unique); d != done_.end()) {
      FuseReply r = std::move(d->second);
      done_.erase(d);
      return r;
    }
    auto p = pending_.find(ticket.unique);
    if (p == pending_.end()) throw std::logic_error("Frontend::wait: unknown ticket");
    const unsigned q = p->second.queue;
    reap(q);
    if (done_.count(ticket.unique) != 0) continue;
    if (!queue(q).wait_for_used(deadline)) return std::nullopt;
  }
}

FuseReply Frontend::wait(Ticket ticket) {
  auto r = try_wait(ticket, options_.timeout);
  if (!r) {
    throw FrontendError("no reply to FUSE request " + std::to_string(ticket.unique) + " within " +
                        std::to_string(options_.timeout.count()) + " ms");
  }
  if (r->used_len >= sizeof(fuse_out_header) && r->header.unique != ticket.unique) {
    throw FrontendError("reply to request " + std::to_string(ticket.unique) + " carries unique " +
                        std::to_string(r->header.unique));
  }
  return std::move(*r);
}

FuseReply Frontend::call(unsigned q, uint32_t opcode, uint64_t nodeid,
                         std::span<const std::byte> args, size_t reply_capacity,
                         std::span<const std::byte> data) {
  return wait(submit(q, opcode, nodeid, args, reply_capacity, data));
}

std::optional<uint32_t> Frontend::wait_raw_used(unsigned q, uint16_t head, Milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  DriverQueue& dq = queue(q);
  for (;;) {
    reap(q);
    auto& raw = dq.raw_used();
    for (auto it = raw.begin(); it != raw.end(); ++it) {
      if (it->id == head) {
        const uint32_t len = it->len;
        raw.erase(it);
        return len;
      }
    }
    if (!dq.wait_for_used(deadline)) return std::nullopt;
  }
}

// ---- FuseGuest ----------------------------------------------------------------------------------

namespace {

template <class T>
FuseResult<T> typed(const FuseReply& r) {
  FuseResult<T> out;
  if (r.used_len < sizeof(fuse_out_header)) throw FrontendError("no FUSE reply header");
  out.error = r.error();
  if (out.error == 0) out.value = r.as<T>();
  return out;
}

int status(const FuseReply& r) {
  if (r.used_len < sizeof(fuse_out_header)) throw FrontendError("no FUSE reply header");
  return r.error();
}

}  // namespace

std::vector<std::byte> FuseGuest::name_arg(std::string_view name) {
  std::vector<std::byte> out(name.size() + 1);
  std::memcpy(out.data(), name.data(), name.size());
  return out;
}

fuse_init_out FuseGuest::init(uint32_t minor) {
  fuse_init_in in{};
  in.major = kernel_version;
  in.minor = minor;
  in.max_readahead = 128 * 1024;
  const uint64_t flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT |
                         FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS;
  in.flags = static_cast<uint32_t>(flags);
  in.flags2 = static_cast<uint32_t>(flags >> 32);
  const FuseReply r = f_.call(queue_, FUSE_INIT, 0, arg(in), sizeof(fuse_init_out));
  if (r.used_len < sizeof(fuse_out_header) || r.error() != 0) {
    throw FrontendError("FUSE_INIT failed: error " + std::to_string(r.error()));
  }
  fuse_init_out out{};
  std::memcpy(&out, r.body.data(), std::min(r.body.size(), sizeof out));
  return out;
}

FuseResult<fuse_entry_out> FuseGuest::lookup(uint64_t parent, std::string_view name) {
  auto r = typed<fuse_entry_out>(
      f_.call(queue_, FUSE_LOOKUP, parent, name_arg(name), sizeof(fuse_entry_out)));
  // A negative entry (node id 0, cached for entry_valid) is the kernel's ENOENT.
  if (r.ok() && r.value.nodeid == 0) r.error = ENOENT;
  return r;
}

FuseResult<fuse_attr_out> FuseGuest::getattr(uint64_t ino) {
  return typed<fuse_attr_out>(
      f_.call(queue_, FUSE_GETATTR, ino, arg(fuse_getattr_in{}), sizeof(fuse_attr_out)));
}

FuseResult<fuse_entry_out> FuseGuest::mkdir(uint64_t parent, std::string_view name, uint32_t mode) {
  return typed<fuse_entry_out>(f_.call(queue_, FUSE_MKDIR, parent,
                                       arg(fuse_mkdir_in{mode, 0}, name), sizeof(fuse_entry_out)));
}

FuseResult<CreateOut> FuseGuest::create(uint64_t parent, std::string_view name, uint32_t mode,
                                        uint32_t flags) {
  const FuseReply r =
      f_.call(queue_, FUSE_CREATE, parent, arg(fuse_create_in{flags, S_IFREG | mode, 0, 0}, name),
              sizeof(fuse_entry_out) + sizeof(fuse_open_out));
  FuseResult<CreateOut> out;
  out.error = status(r);
  if (out.error == 0) {
    if (r.body.size() < sizeof(fuse_entry_out) + sizeof(fuse_open_out)) {
      throw FrontendError("short CREATE reply");
    }
    std::memcpy(&out.value.entry, r.body.data(), sizeof out.value.entry);
    std::memcpy(&out.value.open, r.body.data() + sizeof out.value.entry, sizeof out.value.open);
  }
  return out;
}

FuseResult<fuse_open_out> FuseGuest::open(uint64_t ino, uint32_t flags) {
  return typed<fuse_open_out>(
      f_.call(queue_, FUSE_OPEN, ino, arg(fuse_open_in{flags, 0}), sizeof(fuse_open_out)));
}

FuseResult<std::vector<std::byte>> FuseGuest::read(uint64_t ino, uint64_t fh, uint64_t offset,
                                                   uint32_t size) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = offset;
  in.size = size;
  in.flags = 02;
  FuseReply r = f_.call(queue_, FUSE_READ, ino, arg(in), size);
  FuseResult<std::vector<std::byte>> out;
  out.error = status(r);
  if (out.error == 0) out.value = std::move(r.body);
  return out;
}

FuseResult<uint32_t> FuseGuest::write(uint64_t ino, uint64_t fh, uint64_t offset,
                                      std::span<const std::byte> data) {
  fuse_write_in in{};
  in.fh = fh;
  in.offset = offset;
  in.size = static_cast<uint32_t>(data.size());
  in.flags = 02;
  const FuseReply r = f_.call(queue_, FUSE_WRITE, ino, arg(in), sizeof(fuse_write_out), data);
  FuseResult<uint32_t> out;
  out.error = status(r);
  if (out.error == 0) out.value = r.as<fuse_write_out>().size;
  return out;
}

int FuseGuest::release(uint64_t ino, uint64_t fh) {
  return status(f_.call(queue_, FUSE_RELEASE, ino, arg(fuse_release_in{fh, 02, 0, 0}), 0));
}

int FuseGuest::unlink(uint64_t parent, std::string_view name) {
  return status(f_.call(queue_, FUSE_UNLINK, parent, name_arg(name), 0));
}

int FuseGuest::rmdir(uint64_t parent, std::string_view name) {
  return status(f_.call(queue_, FUSE_RMDIR, parent, name_arg(name), 0));
}

FuseResult<fuse_open_out> FuseGuest::opendir(uint64_t ino) {
  return typed<fuse_open_out>(
      f_.call(queue_, FUSE_OPENDIR, ino, arg(fuse_open_in{0, 0}), sizeof(fuse_open_out)));
}

FuseResult<std::vector<DirEntry>> FuseGuest::readdir(uint64_t ino, uint64_t fh, uint64_t offset,
                                                     uint32_t size) {
  fuse_read_in in{};
  in.fh = fh;
  in.offset = offset;
  in.size = size;
  const FuseReply r = f_.call(queue_, FUSE_READDIR, ino, arg(in), size);
  FuseResult<std::vector<DirEntry>> out;
  out.error = status(r);
  if (out.error != 0) return out;
  size_t pos = 0;
  while (pos + sizeof(fuse_dirent) <= r.body.size()) {
    fuse_dirent d;
    std::memcpy(&d, r.body.data() + pos, sizeof d);
    const size_t rec = fuse_dirent_size(d.namelen);
    if (d.namelen > 255 || pos + rec > r.body.size()) throw FrontendError("malformed dirent");
    DirEntry e{d.ino, d.off, d.type, {}};
    e.name.assign(reinterpret_cast<const char*>(r.body.data() + pos + sizeof d), d.namelen);
    out.value.push_back(std::move(e));
    pos += rec;
  }
  return out;
}

int FuseGuest::releasedir(uint64_t ino, uint64_t fh) {
  return status(f_.call(queue_, FUSE_RELEASEDIR, ino, arg(fuse_release_in{fh, 0, 0, 0}), 0));
}

FuseResult<std::vector<DirEntry>> FuseGuest::list(uint64_t ino) {
  FuseResult<std::vector<DirEntry>> out;
  auto dir = opendir(ino);
  if (!dir.ok()) {
    out.error = dir.error;
    return out;
  }
  uint64_t offset = 0;
  for (;;) {
    auto part = readdir(ino, dir.value.fh, offset, 4096);
    if (!part.ok()) {
      out.error = part.error;
      break;
    }
    if (part.value.empty()) break;
    offset = part.value.back().off;
    for (auto& e : part.value)
      out.value.push_back(std::move(e));
  }
  if (const int err = releasedir(ino, dir.value.fh); err != 0 && out.error == 0) out.error = err;
  return out;
}

void FuseGuest::forget(uint64_t ino, uint64_t nlookup) {
  const FuseReply r = f_.call(0, FUSE_FORGET, ino, arg(fuse_forget_in{nlookup}), 0);
  if (r.used_len != 0) throw FrontendError("FORGET completed with bytes written");
}

}  // namespace sandfs::test::vhost
