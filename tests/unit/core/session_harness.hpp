// The Session test harness: hand-built FUSE messages (Msg), a ReplyChannel that keeps every
// reply (CaptureChannel), a scriptable backend (FakeFs) and a Session driven on one io_context.
#pragma once

#include <dirent.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "core/session.hpp"

namespace sandfs::session_test {

namespace asio = boost::asio;
using namespace sandfs::fuse;

// Builds a FUSE message: header, then arguments appended in order.
class Msg {
 public:
  Msg(uint32_t opcode, uint64_t nodeid = 1, uint64_t unique = 2) {
    fuse_in_header h{};
    h.opcode = opcode;
    h.nodeid = nodeid;
    h.unique = unique;
    h.uid = 1000;
    h.gid = 1000;
    h.pid = 42;
    add(h);
  }
  template <class T>
  Msg& add(const T& v) {
    append(&v, sizeof v);
    return *this;
  }
  Msg& str(std::string_view s, bool nul = true) {
    append(s.data(), s.size());
    if (nul) bytes_.push_back(std::byte{0});
    return *this;
  }
  // Sets header.len to the real size (or to `len` to lie).
  std::vector<std::byte> done(std::optional<uint32_t> len = std::nullopt) {
    const uint32_t n = len.value_or(static_cast<uint32_t>(bytes_.size()));
    std::memcpy(bytes_.data(), &n, sizeof n);
    return bytes_;
  }

 private:
  // resize + memcpy rather than insert(): GCC 12 -O2 reports a bogus stringop-overflow for
  // inserting a struct's bytes into an empty vector.
  void append(const void* p, size_t n) {
    const size_t old = bytes_.size();
    bytes_.resize(old + n);
    if (n) std::memcpy(bytes_.data() + old, p, n);
  }
  std::vector<std::byte> bytes_;
};

class CaptureChannel : public ReplyChannel {
 public:
  std::vector<std::vector<std::byte>> replies;
  std::vector<std::byte> payload = std::vector<std::byte>(2 << 20);
  iovec payload_iov{};

  IoVecs payload_buffer(size_t size) override {
    payload_iov = iovec{payload.data(), std::min(size, payload.size())};
    return IoVecs{std::span<const iovec>(&payload_iov, 1), payload_iov.iov_len};
  }
  bool send(std::span<const iovec> iov) override {
    std::vector<std::byte> out;
    for (const iovec& v : iov) {
      const auto* p = static_cast<const std::byte*>(v.iov_base);
      out.insert(out.end(), p, p + v.iov_len);
    }
    replies.push_back(std::move(out));
    return true;
  }
  fuse_out_header header(size_t i = 0) const {
    fuse_out_header h{};
    REQUIRE(replies.size() > i);
    REQUIRE(replies[i].size() >= sizeof h);
    std::memcpy(&h, replies[i].data(), sizeof h);
    CHECK(h.len == replies[i].size());
    return h;
  }
  template <class T>
  T body(size_t i = 0) const {
    T v{};
    REQUIRE(replies.at(i).size() >= sizeof(fuse_out_header) + sizeof(T));
    std::memcpy(&v, replies[i].data() + sizeof(fuse_out_header), sizeof v);
    return v;
  }
};

class FakeFs : public Filesystem {
 public:
  Capabilities caps;
  SessionParams params;
  std::vector<std::pair<InodeId, uint64_t>> forgets;
  std::string last_name;
  uint32_t last_umask = 99;
  int lookups = 0;
  int writes = 0;
  const void* last_write_base = nullptr;
  bool throw_bad_alloc = false;
  bool throw_runtime = false;
  int readdir_entries = 0;

  Capabilities capabilities() const override { return caps; }
  Task<Status> init(const SessionParams& p) override {
    params = p;
    co_return ok_status();
  }
  Task<Result<Entry>> lookup(const RequestContext& ctx, InodeId parent,
                             std::string_view name) override {
    ++lookups;
    last_name = std::string(name);
    if (throw_bad_alloc) throw std::bad_alloc();
    if (throw_runtime) throw std::runtime_error("boom");
    if (name == "missing") co_return Errno{ENOENT};
    Entry e;
    e.ino = parent + 10;
    e.attr.ino = e.ino;
    e.attr.mode = S_IFREG | 0644;
    e.attr.uid = ctx.uid;
    e.attr.size = 123;
    e.entry_timeout = std::chrono::milliseconds(1500);
    e.attr_timeout = std::chrono::seconds(2);
    co_return e;
  }
  void forget(InodeId ino, uint64_t n) override { forgets.emplace_back(ino, n); }
  Task<Result<Entry>> mkdir(const RequestContext&, InodeId, std::string_view name, uint32_t,
                            uint32_t umask) override {
    last_name = std::string(name);
    last_umask = umask;
    Entry e;
    e.ino = 77;
    co_return e;
  }
  Task<Result<size_t>> read(const RequestContext& ctx, InodeId, HandleId fh, uint64_t offset,
                            uint32_t size, const IoVecs& dst) override {
    if (fh == 999) {
      // Wait until interrupted, polling like a long copy would.
      asio::steady_timer t(co_await asio::this_coro::executor);
      while (!ctx.is_interrupted()) {
        t.expires_after(std::chrono::milliseconds(1));
        co_await t.async_wait(asio::use_awaitable);
      }
      co_return Errno{EINTR};
    }
    size_t n = std::min<size_t>(size, 10);
    REQUIRE(dst.size >= n);
    auto* p = static_cast<char*>(dst.iov[0].iov_base);
    for (size_t i = 0; i < n; ++i)
      p[i] = static_cast<char>('a' + (offset + i) % 26);
    co_return n;
  }
  Task<Result<size_t>> write(const RequestContext&, InodeId, HandleId, uint64_t, const IoVecs& src,
                             bool) override {
    ++writes;
    last_write_base = src.iov.empty() ? nullptr : src.iov[0].iov_base;
    co_return src.size;
  }
  Task<Status> readdir(const RequestContext&, InodeId, HandleId, uint64_t offset,
                       DirSink& sink) override {
    for (uint64_t i = offset; i < 1000; ++i) {
      if (!sink.add("entry" + std::to_string(i), 100 + i, DT_REG, i + 1)) break;
      ++readdir_entries;
    }
    co_return ok_status();
  }
};

struct Harness {
  asio::io_context io;
  std::shared_ptr<FakeFs> fs = std::make_shared<FakeFs>();
  std::unique_ptr<Session> session;
  CaptureChannel ch;

  explicit Harness(bool init = true, SessionOptions options = {}) {
    log::set_level(log::Level::warn);  // INIT logs at info; keep test output readable
    session = std::make_unique<Session>(fs, std::move(options));
    if (init) {
      send(init_msg(45));
      REQUIRE(session->initialized());
      ch.replies.clear();
    }
  }
  static std::vector<std::byte> init_msg(uint32_t minor, uint32_t major = 7) {
    fuse_init_in in{};
    in.major = major;
    in.minor = minor;
    in.max_readahead = 131072;
    in.flags = 0x73fffffb;  // what kernel 6.18 offers
    in.flags2 = 0x000005fd;
    return Msg(FUSE_INIT).add(in).done();
  }
  void send(const std::vector<std::byte>& msg) {
    asio::co_spawn(io, session->handle(msg, ch), asio::detached);
    io.run();
    io.restart();
  }
};

}  // namespace sandfs::session_test
