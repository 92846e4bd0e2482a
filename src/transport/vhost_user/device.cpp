#include "transport/vhost_user/device.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "transport/vhost_user/descriptor_chain.hpp"
#include "transport/vhost_user/guest_memory.hpp"
#include "transport/vhost_user/virtqueue.hpp"

namespace sandfs::vhost_user {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t offered_features = virtio_f_version_1 | virtio_ring_f_indirect_desc |
                                      virtio_ring_f_event_idx | vhost_user_f_protocol_features;
constexpr uint64_t offered_protocol_features = protocol_f_mq | protocol_f_reply_ack;
constexpr size_t out_header_size = 16;  // fuse_out_header
constexpr size_t min_request_size = sizeof(fuse::fuse_in_header);
// fuse_in_header + fuse_write_in: what a WRITE request has before its data.
constexpr size_t write_prefix = sizeof(fuse::fuse_in_header) + sizeof(fuse::fuse_write_in);

// A request's reply, written straight into the chain's writable buffers.
class ChainReply final : public ReplyChannel {
 public:
  explicit ChainReply(const DescriptorChain& chain) : chain_(chain) {}

  IoVecs payload_buffer(size_t size) override {
    IovecCursor cursor(chain_.writable());
    payload_.clear();
    if (cursor.skip(out_header_size) != out_header_size) return {};
    if (cursor.take(size, payload_) < size) return {};
    return IoVecs{std::span<const iovec>(payload_.data(), payload_.size()), size};
  }

  bool send(std::span<const iovec> parts) override {
    // Scatter the parts into the writable buffers. A READ payload was read straight into them
    // (payload_buffer): its pieces already sit where they belong and are not copied again.
    std::span<const iovec> dst = chain_.writable();
    size_t di = 0, doff = 0, total = 0;
    for (const iovec& part : parts) {
      const auto* src = static_cast<const std::byte*>(part.iov_base);
      size_t left = part.iov_len;
      while (left > 0) {
        if (di == dst.size()) return false;  // more reply than room: the guest gave too little
        auto* d = static_cast<std::byte*>(dst[di].iov_base) + doff;
        const size_t n = std::min(left, dst[di].iov_len - doff);
        if (d != src) std::memcpy(d, src, n);
        src += n;
        left -= n;
        total += n;
        doff += n;
        if (doff == dst[di].iov_len) {
          ++di;
          doff = 0;
        }
      }
    }
    written_ = static_cast<uint32_t>(total);
    return true;
  }

  uint32_t written() const { return written_; }

 private:
  const DescriptorChain& chain_;
  IovecList payload_;
  uint32_t written_ = 0;
};

}  // namespace

struct Device::Vring {
  unsigned index = 0;
  uint32_t num = 0;
  std::optional<VringAddr> addr;
  uint16_t base = 0;
  UniqueFd kick;
  UniqueFd err;
  std::shared_ptr<UniqueFd> call;  // shared with the running queue (swapped through a post)
  bool enabled = false;
  std::shared_ptr<Queue> queue;
};

// One started vring on its io thread.
class Device::Queue : public std::enable_shared_from_this<Queue> {
 public:
  // `kick_fd` becomes the queue's own (a dup of the Vring's).
  Queue(asio::io_context& ctx, SplitVirtqueue vq, int kick_fd, std::shared_ptr<UniqueFd> call,
        std::shared_ptr<Session> session, DeviceCounters& counters, std::string name)
      : ctx_(ctx),
        vq_(std::move(vq)),
        kick_(ctx, kick_fd),
        call_(std::move(call)),
        session_(std::move(session)),
        counters_(counters),
        name_(std::move(name)),
        buffer_limit_(session_->request_buffer_size()) {}

  asio::io_context& context() { return ctx_; }

  void start() { asio::co_spawn(ctx_, run(shared_from_this()), asio::detached); }

  // On the queue's thread: stops popping, waits for the requests in flight, and returns the
  // next avail index to process (for GET_VRING_BASE).
  Task<uint16_t> stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    kick_.cancel(ignored);
    asio::steady_timer timer(ctx_);
    auto waited = std::chrono::steady_clock::now();
    while (in_flight_ > 0 || running_) {
      timer.expires_after(1ms);
      co_await timer.async_wait(asio::use_awaitable);
      if (std::chrono::steady_clock::now() - waited > 10s) {
        SANDFS_LOG(warn) << name_ << ": still " << in_flight_
                         << " requests in flight 10 s after the ring was stopped";
        waited = std::chrono::steady_clock::now();
      }
    }
    co_return vq_.last_avail_idx();
  }

 private:
  static Task<void> run(std::shared_ptr<Queue> self) { co_await self->loop(); }

  Task<void> loop() {
    running_ = true;
    while (!stopping_) {
      drain();
      if (stopping_) break;
      auto [ec] = co_await kick_.async_wait(asio::posix::stream_descriptor::wait_read,
                                            asio::as_tuple(asio::use_awaitable));
      if (ec) break;
      uint64_t count;
      [[maybe_unused]] const ssize_t n = ::read(kick_.native_handle(), &count, sizeof count);
    }
    running_ = false;
  }

  void drain() {
    for (;;) {
      vq_.disable_notification();
      while (!stopping_) {
        PopResult r = vq_.pop();
        if (r.status == PopStatus::empty) break;
        if (r.status == PopStatus::broken_ring) {
          SANDFS_LOG(error) << name_ << ": the available ring is corrupt; queue stopped";
          stopping_ = true;
          return;
        }
        if (r.status == PopStatus::bad_chain) {
          counters_.bad_chains.fetch_add(1, std::memory_order_relaxed);
          if (bad_logged_++ < 10) {
            SANDFS_LOG(warn) << name_ << ": dropped a malformed descriptor chain (head " << r.head
                             << "): " << to_string(r.fault);
          }
          if (r.completable()) complete(r.head, 0);
          continue;
        }
        ++in_flight_;
        counters_.requests.fetch_add(1, std::memory_order_relaxed);
        asio::co_spawn(ctx_, serve(shared_from_this(), std::move(r.chain)), asio::detached);
      }
      if (stopping_ || !vq_.enable_notification()) return;
    }
  }

  static Task<void> serve(std::shared_ptr<Queue> self, DescriptorChain chain) {
    co_await self->serve_chain(chain);
  }

  Task<void> serve_chain(const DescriptorChain& chain) {
    const size_t size = chain.readable_bytes();
    if (size < min_request_size || size > buffer_limit_) {
      counters_.bad_chains.fetch_add(1, std::memory_order_relaxed);
      complete(chain.head(), 0);
      --in_flight_;
      co_return;
    }
    // What the Session parses is copied out of guest memory first: the guest may rewrite those
    // bytes at any time. A WRITE's data is not parsed, only stored: it stays in guest memory and
    // the backend writes it to the host file straight from there.
    fuse::fuse_in_header header;
    ChainReader peek(chain);
    peek.read_exact(&header, sizeof header);
    ChainReply reply(chain);
    if (header.opcode == fuse::FUSE_WRITE && size > write_prefix) {
      std::array<std::byte, write_prefix> prefix;
      ChainReader reader(chain);
      reader.read_exact(prefix.data(), prefix.size());
      IovecList data;
      const size_t data_size = reader.take(size - write_prefix, data);
      co_await session_->handle_write(
          std::span<const std::byte>(prefix),
          IoVecs{std::span<const iovec>(data.data(), data.size()), data_size}, reply);
    } else {
      std::vector<std::byte> request(size);
      ChainReader reader(chain);
      reader.read(request.data(), request.size());
      co_await session_->handle(std::span<const std::byte>(request), reply);
    }
    const uint32_t written = reply.written();
    complete(chain.head(), written);
    --in_flight_;
  }

  void complete(uint16_t head, uint32_t written) {
    vq_.push(head, written);
    if (vq_.needs_notify() && call_ && call_->valid()) {
      const uint64_t one = 1;
      [[maybe_unused]] const ssize_t n = ::write(call_->get(), &one, sizeof one);
      counters_.notifications.fetch_add(1, std::memory_order_relaxed);
    }
  }

  asio::io_context& ctx_;
  SplitVirtqueue vq_;
  asio::posix::stream_descriptor kick_;
  std::shared_ptr<UniqueFd> call_;
  std::shared_ptr<Session> session_;
  DeviceCounters& counters_;
  std::string name_;
  size_t buffer_limit_;
  uint32_t in_flight_ = 0;
  uint32_t bad_logged_ = 0;
  bool stopping_ = false;
  bool running_ = false;
};

Device::Device(MessageChannel channel, std::shared_ptr<Filesystem> fs, DeviceOptions options,
               io::IoThreads& threads, std::string name)
    : channel_(std::move(channel)),
      fs_(std::move(fs)),
      options_(std::move(options)),
      threads_(threads),
      name_(std::move(name)) {
  const unsigned count = options_.request_queues + 1;
  for (unsigned i = 0; i < count; ++i) {
    auto v = std::make_unique<Vring>();
    v->index = i;
    vrings_.push_back(std::move(v));
  }
  options_.session.name = name_;
  session_ = std::make_shared<Session>(fs_, options_.session);
}

Device::~Device() = default;

void Device::disconnect() {
  asio::post(channel_.socket().get_executor(),
             [self = shared_from_this()] { self->channel_.close(); });
}

Device::Vring* Device::vring(uint64_t index) {
  if (index >= vrings_.size()) return nullptr;
  return vrings_[index].get();
}

Task<void> Device::run() {
  ChannelError error;
  for (;;) {
    std::optional<Message> m = co_await channel_.receive(error);
    if (!m) break;
    if (!co_await handle(*m)) {
      error.kind = ChannelError::Kind::protocol;
      break;
    }
  }
  if (error.kind == ChannelError::Kind::closed) {
    SANDFS_LOG(info) << name_ << ": frontend disconnected";
  } else if (!error.what.empty()) {
    SANDFS_LOG(warn) << name_ << ": connection ended: " << error.what;
  }
  co_await stop_all_queues();
  co_await session_->shutdown();
  channel_.close();
  SANDFS_LOG(info) << name_ << ": " << counters_.requests.load() << " requests, "
                   << counters_.bad_chains.load() << " malformed chains dropped, "
                   << counters_.notifications.load() << " interrupts sent";
  SANDFS_LOG(debug) << name_ << ": statistics:\n" << session_->stats().to_text();
}

Task<void> Device::stop_queue(Vring& v) {
  if (!v.queue) co_return;
  std::shared_ptr<Queue> q = std::move(v.queue);
  v.base = co_await asio::co_spawn(q->context(), q->stop(), asio::use_awaitable);
}

Task<void> Device::stop_all_queues() {
  for (auto& v : vrings_)
    co_await stop_queue(*v);
}

void Device::maybe_start(Vring& v) {
  if (v.queue || !memory_ || !v.addr || v.num == 0 || !v.kick) return;
  const bool protocol = (features_ & vhost_user_f_protocol_features) != 0;
  if (protocol && !v.enabled) return;
  VirtqueueConfig config;
  config.size = v.num;
  config.desc_addr = v.addr->desc_user_addr;
  config.avail_addr = v.addr->avail_user_addr;
  config.used_addr = v.addr->used_user_addr;
  config.address_space = RingAddressSpace::user;
  config.last_avail_idx = v.base;
  config.event_idx = (features_ & virtio_ring_f_event_idx) != 0;
  config.indirect_desc = (features_ & virtio_ring_f_indirect_desc) != 0;
  auto vq = SplitVirtqueue::create(memory_, config);
  if (!vq) {
    SANDFS_LOG(warn) << name_ << ": vring " << v.index << " not started: " << to_string(vq.error());
    return;
  }
  if (!v.call) v.call = std::make_shared<UniqueFd>();
  const int kick = ::fcntl(v.kick.get(), F_DUPFD_CLOEXEC, 0);
  if (kick < 0) {
    SANDFS_LOG(warn) << name_ << ": vring " << v.index << " not started: " << std::strerror(errno);
    return;
  }
  v.queue = std::make_shared<Queue>(threads_.pick(), std::move(*vq), kick, v.call, session_,
                                    counters_, name_ + " queue " + std::to_string(v.index));
  v.queue->start();
}

Task<bool> Device::handle(Message& m) {
  const uint32_t req = m.header.request;
  const bool ack = (protocol_features_ & protocol_f_reply_ack) != 0 && m.needs_reply();
  auto fault = [&](const std::string& why) {
    SANDFS_LOG(warn) << name_ << ": " << request_name(req) << ": " << why;
    return false;
  };
  // Messages that have no reply of their own answer REPLY_ACK with 0 (success) or 1.
  auto done = [&](bool ok) {
    if (ack) channel_.reply_u64(req, ok ? 0 : 1);
    return true;
  };

  switch (m.request()) {
    case Request::get_features:
      co_return channel_.reply_u64(req, offered_features);
    case Request::set_features: {
      auto v = m.as<uint64_t>();
      if (!v) co_return fault("bad payload size");
      if ((*v & ~offered_features) != 0) co_return fault("features that were never offered");
      features_ = *v;
      features_set_ = true;
      co_return done(true);
    }
    case Request::get_protocol_features:
      co_return channel_.reply_u64(req, offered_protocol_features);
    case Request::set_protocol_features: {
      auto v = m.as<uint64_t>();
      if (!v) co_return fault("bad payload size");
      protocol_features_ = *v & offered_protocol_features;
      co_return done(true);
    }
    case Request::set_owner:
      co_return done(true);
    case Request::reset_owner:
    case Request::reset_device:
      co_await stop_all_queues();
      for (auto& v : vrings_) {
        const unsigned index = v->index;
        *v = Vring{};
        v->index = index;
      }
      features_ = 0;
      features_set_ = false;
      co_return done(true);
    case Request::get_queue_num:
      co_return channel_.reply_u64(req, vrings_.size());
    case Request::set_mem_table: {
      if (m.header.size < 8) co_return fault("bad payload size");
      uint32_t count;
      std::memcpy(&count, m.payload.data(), sizeof count);
      if (count == 0 || count > max_mem_regions ||
          m.header.size != 8 + count * sizeof(MemoryRegion)) {
        co_return fault("bad region count or payload size");
      }
      if (m.fds.size() != count) co_return fault("not one fd per region");
      std::vector<MemoryRegionInfo> regions(count);
      std::vector<int> fds(count);
      for (uint32_t i = 0; i < count; ++i) {
        MemoryRegion r;
        std::memcpy(&r, m.payload.data() + 8 + i * sizeof r, sizeof r);
        regions[i] = {r.guest_phys_addr, r.memory_size, r.userspace_addr, r.mmap_offset};
        fds[i] = m.fds[i].get();
      }
      auto mapped = GuestMemory::map(regions, fds);
      if (!mapped) co_return fault(mapped.error().message());
      // Running rings translated their addresses through the old table: restart them on the new.
      std::vector<Vring*> restart;
      for (auto& v : vrings_) {
        if (v->queue) {
          co_await stop_queue(*v);
          restart.push_back(v.get());
        }
      }
      memory_ = std::move(*mapped);
      for (Vring* v : restart)
        maybe_start(*v);
      co_return done(true);
    }
    case Request::set_vring_num: {
      auto s = m.as<VringState>();
      if (!s) co_return fault("bad payload size");
      Vring* v = vring(s->index);
      if (!v) co_return fault("no such vring");
      if (s->num == 0 || s->num > 32768 || (s->num & (s->num - 1)) != 0) {
        co_return fault("ring size " + std::to_string(s->num) + " is not a power of 2 <= 32768");
      }
      v->num = s->num;
      co_return done(true);
    }
    case Request::set_vring_addr: {
      auto a = m.as<VringAddr>();
      if (!a) co_return fault("bad payload size");
      Vring* v = vring(a->index);
      if (!v) co_return fault("no such vring");
      v->addr = *a;
      co_return done(true);
    }
    case Request::set_vring_base: {
      auto s = m.as<VringState>();
      if (!s) co_return fault("bad payload size");
      Vring* v = vring(s->index);
      if (!v) co_return fault("no such vring");
      if (s->num > 0xffff) co_return fault("base index past 65535");
      v->base = static_cast<uint16_t>(s->num);
      co_return done(true);
    }
    case Request::get_vring_base: {
      auto s = m.as<VringState>();
      if (!s) co_return fault("bad payload size");
      Vring* v = vring(s->index);
      if (!v) co_return fault("no such vring");
      co_await stop_queue(*v);
      v->kick.reset();  // the ring is stopped until the next SET_VRING_KICK
      VringState out{s->index, v->base};
      co_return channel_.reply(req, std::as_bytes(std::span(&out, 1)));
    }
    case Request::set_vring_kick:
    case Request::set_vring_call:
    case Request::set_vring_err: {
      auto u = m.as<uint64_t>();
      if (!u) co_return fault("bad payload size");
      Vring* v = vring(*u & vring_index_mask);
      if (!v) co_return fault("no such vring");
      const bool nofd = (*u & vring_nofd_mask) != 0;
      if (nofd != m.fds.empty() || m.fds.size() > 1) co_return fault("fd flag and fds disagree");
      UniqueFd fd = nofd ? UniqueFd() : std::move(m.fds[0]);
      if (m.request() == Request::set_vring_kick) {
        if (nofd) co_return fault("polling a ring without a kick eventfd is not supported");
        co_await stop_queue(*v);
        v->kick = std::move(fd);
        if ((features_ & vhost_user_f_protocol_features) == 0) v->enabled = true;
        maybe_start(*v);
      } else if (m.request() == Request::set_vring_call) {
        // The queue signals from its io thread, which must never block: a frontend may pass a
        // blocking eventfd with its counter at the maximum (a write then waits for a reader) or
        // a pipe nobody drains. Non-blocking, such a write fails with EAGAIN and loses nothing:
        // a full counter already wakes the driver. (O_NONBLOCK is shared with the frontend's
        // copy; QEMU creates its eventfds non-blocking anyway.)
        if (fd) {
          const int flags = ::fcntl(fd.get(), F_GETFL);
          if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK);
        }
        auto call = std::make_shared<UniqueFd>(std::move(fd));
        if (v->queue) {
          // The running queue writes its call fd on its own thread: hand it over there.
          std::shared_ptr<UniqueFd> old = v->call;
          asio::post(v->queue->context(), [old, call] { *old = std::move(*call); });
        } else {
          v->call = std::move(call);
        }
      } else {
        v->err = std::move(fd);
      }
      co_return done(true);
    }
    case Request::set_vring_enable: {
      auto s = m.as<VringState>();
      if (!s) co_return fault("bad payload size");
      Vring* v = vring(s->index);
      if (!v) co_return fault("no such vring");
      v->enabled = s->num != 0;
      if (v->enabled) {
        maybe_start(*v);
      } else {
        co_await stop_queue(*v);
      }
      co_return done(true);
    }
    case Request::set_backend_req_fd:
      co_return done(true);  // never offered; the fd is closed with the message
    default:
      SANDFS_LOG(warn) << name_ << ": " << request_name(req) << " (" << req
                       << ") is not supported; answered as failed";
      co_return done(false);
  }
}

}  // namespace sandfs::vhost_user
