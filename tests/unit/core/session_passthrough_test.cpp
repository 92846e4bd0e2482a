// Session: kernel passthrough. INIT negotiation (backend, transport, kernel offer, writeback),
// the OPEN/CREATE reply encoding (FOPEN_PASSTHROUGH, backing_id, flags), one backing id per
// inode shared by its handles and closed at the last RELEASE, and the fallbacks when the
// kernel refuses a backing file. Driven with hand-built messages, a fake backend and a channel
// that records backing registrations; tests/integration/kernel_passthrough_test.cpp checks the
// same against the real kernel.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "core/log.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "core/session.hpp"

namespace asio = boost::asio;
using namespace sandfs;
using namespace sandfs::fuse;

namespace {

constexpr uint32_t kernel_flags = 0x73fffffb;  // what kernel 6.18 offers
constexpr uint32_t kernel_flags2 = 0x000005fd;

std::vector<std::byte> message(uint32_t opcode, uint64_t nodeid, const void* arg, size_t size,
                               std::string_view name = {}) {
  fuse_in_header h{};
  h.opcode = opcode;
  h.nodeid = nodeid;
  h.unique = 2;
  const size_t len = sizeof h + size + (name.empty() ? 0 : name.size() + 1);
  h.len = static_cast<uint32_t>(len);
  std::vector<std::byte> out(len);
  std::memcpy(out.data(), &h, sizeof h);
  if (size) std::memcpy(out.data() + sizeof h, arg, size);
  if (!name.empty()) std::memcpy(out.data() + sizeof h + size, name.data(), name.size());
  return out;
}

template <class T>
std::vector<std::byte> message(uint32_t opcode, uint64_t nodeid, const T& arg,
                               std::string_view name = {}) {
  return message(opcode, nodeid, &arg, sizeof arg, name);
}

// Records replies and backing registrations; open_backing answers `next_id` (or an error).
class BackingChannel : public ReplyChannel {
 public:
  bool supported = true;
  int next_id = 7;
  int open_error = 0;  // a positive errno: open_backing fails with it
  std::vector<int> opened_fds;
  std::vector<int> closed_ids;
  std::vector<std::vector<std::byte>> replies;

  IoVecs payload_buffer(size_t) override { return {}; }
  bool send(std::span<const iovec> iov) override {
    std::vector<std::byte> out;
    for (const iovec& v : iov) {
      const auto* p = static_cast<const std::byte*>(v.iov_base);
      out.insert(out.end(), p, p + v.iov_len);
    }
    replies.push_back(std::move(out));
    return true;
  }
  bool supports_backing() const override { return supported; }
  int open_backing(int fd) override {
    opened_fds.push_back(fd);
    if (open_error) return -open_error;
    return next_id++;
  }
  int close_backing(int id) override {
    closed_ids.push_back(id);
    return 0;
  }

  int error() const {
    fuse_out_header h{};
    REQUIRE_FALSE(replies.empty());
    std::memcpy(&h, replies.back().data(), sizeof h);
    return h.error;
  }
  template <class T>
  T body(size_t offset = 0) const {
    T v{};
    REQUIRE_FALSE(replies.empty());
    REQUIRE(replies.back().size() >= sizeof(fuse_out_header) + offset + sizeof(T));
    std::memcpy(&v, replies.back().data() + sizeof(fuse_out_header) + offset, sizeof v);
    return v;
  }
};

// A host file for backing fds: a memfd is a regular file with its own inode.
class HostFile {
 public:
  HostFile() : fd_(::memfd_create("sandfs-backing", MFD_CLOEXEC)) { REQUIRE(fd_ >= 0); }
  ~HostFile() { ::close(fd_); }
  HostFile(const HostFile&) = delete;
  HostFile& operator=(const HostFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

class OpenFs : public Filesystem {
 public:
  Capabilities caps;
  SessionParams params;
  // What open() of an inode answers; unknown inodes answer fh 1000+ino, no backing fd.
  std::map<InodeId, OpenReply> replies;
  HandleId next_fh = 1;
  std::vector<HandleId> released;

  OpenFs() { caps.passthrough = true; }

  Capabilities capabilities() const override { return caps; }
  Task<Status> init(const SessionParams& p) override {
    params = p;
    co_return ok_status();
  }
  Task<Result<OpenReply>> open(const RequestContext&, InodeId ino, uint32_t, bool) override {
    OpenReply r;
    if (auto it = replies.find(ino); it != replies.end()) r = it->second;
    r.fh = next_fh++;
    co_return r;
  }
  Task<Result<OpenReply>> opendir(const RequestContext&, InodeId ino, uint32_t) override {
    OpenReply r;
    if (auto it = replies.find(ino); it != replies.end()) r = it->second;
    r.fh = next_fh++;
    co_return r;
  }
  Task<Result<CreateReply>> create(const RequestContext&, InodeId, std::string_view, uint32_t,
                                   uint32_t, uint32_t, bool) override {
    CreateReply c;
    c.entry.ino = 50;
    c.entry.attr.ino = 50;
    c.entry.attr.mode = S_IFREG | 0644;
    if (auto it = replies.find(50); it != replies.end()) c.open = it->second;
    c.open.fh = next_fh++;
    co_return c;
  }
  Task<Status> release(const RequestContext&, InodeId, HandleId fh, uint32_t) override {
    released.push_back(fh);
    co_return ok_status();
  }
};

struct Harness {
  asio::io_context io;
  std::shared_ptr<OpenFs> fs = std::make_shared<OpenFs>();
  std::unique_ptr<Session> session;
  BackingChannel ch;

  explicit Harness(SessionOptions options = {}) {
    log::set_level(log::Level::warn);
    session = std::make_unique<Session>(fs, std::move(options));
  }

  void send(const std::vector<std::byte>& msg) {
    asio::co_spawn(io, session->handle(msg, ch), asio::detached);
    io.run();
    io.restart();
  }
  fuse_init_out init(uint32_t flags2 = kernel_flags2) {
    fuse_init_in in{};
    in.major = 7;
    in.minor = 45;
    in.max_readahead = 131072;
    in.flags = kernel_flags;
    in.flags2 = flags2;
    send(message(FUSE_INIT, 0, in));
    REQUIRE(ch.error() == 0);
    return ch.body<fuse_init_out>();
  }
  fuse_open_out open(InodeId ino) {
    fuse_open_in in{};
    in.flags = O_RDONLY;
    send(message(FUSE_OPEN, ino, in));
    REQUIRE(ch.error() == 0);
    return ch.body<fuse_open_out>();
  }
  void release(InodeId ino, HandleId fh) {
    fuse_release_in in{};
    in.fh = fh;
    send(message(FUSE_RELEASE, ino, in));
    REQUIRE(ch.error() == 0);
  }
  Stats::Snapshot stats() const { return session->stats().snapshot(); }
};

bool negotiated(const fuse_init_out& out) {
  return (out.flags2 & (FUSE_PASSTHROUGH >> 32)) != 0;
}

}  // namespace

TEST_CASE("INIT asks for PASSTHROUGH when backend and transport can", "[session][passthrough]") {
  Harness h;
  const fuse_init_out out = h.init();
  CHECK(negotiated(out));
  // Without a stack depth the kernel silently leaves passthrough off.
  CHECK(out.max_stack_depth == 1);
  CHECK_FALSE(out.flags & FUSE_WRITEBACK_CACHE);
  CHECK(h.fs->params.passthrough);
  CHECK(h.session->passthrough());
}

TEST_CASE("INIT leaves PASSTHROUGH off unless every side agrees", "[session][passthrough]") {
  SECTION("the backend does not ask") {
    Harness h;
    h.fs->caps.passthrough = false;
    const fuse_init_out out = h.init();
    CHECK_FALSE(negotiated(out));
    CHECK(out.max_stack_depth == 0);
    CHECK_FALSE(h.fs->params.passthrough);
  }
  SECTION("the transport cannot register backing files") {
    Harness h;
    h.ch.supported = false;
    CHECK_FALSE(negotiated(h.init()));
    CHECK_FALSE(h.fs->params.passthrough);
    CHECK_FALSE(h.session->passthrough());
  }
  SECTION("the session options turn it off") {
    SessionOptions options;
    options.passthrough = false;
    Harness h(options);
    CHECK_FALSE(negotiated(h.init()));
    CHECK_FALSE(h.fs->params.passthrough);
  }
  SECTION("the kernel does not offer it") {
    Harness h;
    const fuse_init_out out = h.init(kernel_flags2 & ~uint32_t(FUSE_PASSTHROUGH >> 32));
    CHECK_FALSE(negotiated(out));
    CHECK(out.max_stack_depth == 0);
    CHECK_FALSE(h.fs->params.passthrough);
  }
}

TEST_CASE("INIT prefers the writeback cache over passthrough", "[session][passthrough]") {
  Harness h;
  h.fs->caps.writeback_cache = true;
  const fuse_init_out out = h.init();
  CHECK(out.flags & FUSE_WRITEBACK_CACHE);
  CHECK_FALSE(negotiated(out));
  CHECK(out.max_stack_depth == 0);
  CHECK(h.fs->params.writeback_cache);
  CHECK_FALSE(h.fs->params.passthrough);
  CHECK_FALSE(h.session->passthrough());
}

TEST_CASE("INIT takes passthrough when the kernel does not offer writeback",
          "[session][passthrough]") {
  Harness h;
  h.fs->caps.writeback_cache = true;
  fuse_init_in in{};
  in.major = 7;
  in.minor = 45;
  in.flags = kernel_flags & ~uint32_t(FUSE_WRITEBACK_CACHE);
  in.flags2 = kernel_flags2;
  h.send(message(FUSE_INIT, 0, in));
  REQUIRE(h.ch.error() == 0);
  const auto out = h.ch.body<fuse_init_out>();
  CHECK_FALSE(out.flags & FUSE_WRITEBACK_CACHE);
  CHECK(negotiated(out));
  CHECK_FALSE(h.fs->params.writeback_cache);
  CHECK(h.fs->params.passthrough);
}

TEST_CASE("OPEN with a backing fd answers FOPEN_PASSTHROUGH and the backing id",
          "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file;
  // Cache flags mean nothing to a passthrough file; DIRECT_IO would send read() and write()
  // back to the server. NOFLUSH may stay.
  h.fs->replies[5] = OpenReply{0, FOPEN_KEEP_CACHE | FOPEN_DIRECT_IO | FOPEN_NOFLUSH, file.fd()};
  const fuse_open_out out = h.open(5);
  CHECK(out.fh == 1);
  CHECK(out.open_flags == (FOPEN_PASSTHROUGH | FOPEN_NOFLUSH));
  CHECK(out.backing_id == 7);
  REQUIRE(h.ch.opened_fds.size() == 1);
  CHECK(h.ch.opened_fds[0] == file.fd());
  CHECK(h.ch.closed_ids.empty());  // the kernel looks the id up after the reply
  auto s = h.stats();
  CHECK(s.passthrough_opens == 1);
  CHECK(s.passthrough_fallbacks == 0);
  CHECK(s.backing_ids == 1);

  h.release(5, out.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7});
  CHECK(h.fs->released == std::vector<HandleId>{1});
  CHECK(h.stats().backing_ids == 0);
}

TEST_CASE("opens of one inode share its backing id until the last RELEASE",
          "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file;
  h.fs->replies[5] = OpenReply{0, 0, file.fd()};
  const fuse_open_out a = h.open(5);
  // The backend may hand out a new fd per open; the kernel allows one backing per inode, and
  // the fd is another one on the same host file.
  const int again = ::dup(file.fd());
  REQUIRE(again >= 0);
  h.fs->replies[5].backing_fd = again;
  const fuse_open_out b = h.open(5);
  ::close(again);
  h.fs->replies[5].backing_fd = file.fd();
  CHECK(a.backing_id == 7);
  CHECK(b.backing_id == 7);
  CHECK(b.open_flags == FOPEN_PASSTHROUGH);
  CHECK(h.ch.opened_fds.size() == 1);
  CHECK(h.stats().passthrough_opens == 2);
  CHECK(h.stats().backing_ids == 1);

  h.release(5, a.fh);
  CHECK(h.ch.closed_ids.empty());
  // A third open while one is still open reuses the id too.
  const fuse_open_out c = h.open(5);
  CHECK(c.backing_id == 7);
  h.release(5, b.fh);
  CHECK(h.ch.closed_ids.empty());
  h.release(5, c.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7});
  CHECK(h.stats().backing_ids == 0);

  // After the last release the inode starts afresh with a new id.
  const fuse_open_out d = h.open(5);
  CHECK(d.backing_id == 8);
  h.release(5, d.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7, 8});

  SECTION("different inodes get their own ids") {
    HostFile second;
    h.fs->replies[6] = OpenReply{0, 0, second.fd()};
    const fuse_open_out x = h.open(5);
    const fuse_open_out y = h.open(6);
    CHECK(x.backing_id == 9);
    CHECK(y.backing_id == 10);
    h.release(6, y.fh);
    CHECK(h.ch.closed_ids.back() == 10);
    h.release(5, x.fh);
    CHECK(h.ch.closed_ids.back() == 9);
  }
}

TEST_CASE("a refused backing file falls back to an ordinary open", "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file, second;
  h.fs->replies[5] = OpenReply{0, FOPEN_KEEP_CACHE, file.fd()};
  h.fs->replies[6] = OpenReply{0, FOPEN_KEEP_CACHE, second.fd()};

  SECTION("EPERM (no CAP_SYS_ADMIN) stops trying for the session") {
    h.ch.open_error = EPERM;
    const fuse_open_out a = h.open(5);
    CHECK(a.open_flags == FOPEN_KEEP_CACHE);  // the backend's own flags, untouched
    CHECK(a.backing_id == 0);
    const fuse_open_out b = h.open(6);
    CHECK(b.backing_id == 0);
    CHECK(h.ch.opened_fds.size() == 1);
    auto s = h.stats();
    CHECK(s.passthrough_opens == 0);
    CHECK(s.passthrough_fallbacks == 2);
    CHECK(s.backing_ids == 0);
    h.release(5, a.fh);
    h.release(6, b.fh);
    CHECK(h.ch.closed_ids.empty());
  }
  SECTION("ELOOP (a stacked host filesystem) affects that file only") {
    h.ch.open_error = ELOOP;
    const fuse_open_out a = h.open(5);
    CHECK(a.backing_id == 0);
    CHECK(a.open_flags == FOPEN_KEEP_CACHE);
    h.ch.open_error = 0;
    const fuse_open_out b = h.open(6);
    CHECK(b.backing_id == 7);
    CHECK(h.ch.opened_fds.size() == 2);
    CHECK(h.stats().passthrough_fallbacks == 1);
    CHECK(h.stats().passthrough_opens == 1);
  }
}

TEST_CASE("an inode with ordinary handles open is not switched to passthrough",
          "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file;
  const fuse_open_out plain = h.open(5);  // no backing fd offered
  CHECK(plain.backing_id == 0);
  h.fs->replies[5] = OpenReply{0, 0, file.fd()};
  const fuse_open_out offered = h.open(5);
  CHECK(offered.backing_id == 0);
  CHECK_FALSE(offered.open_flags & FOPEN_PASSTHROUGH);
  CHECK(h.ch.opened_fds.empty());
  CHECK(h.stats().passthrough_fallbacks == 1);

  h.release(5, plain.fh);
  h.release(5, offered.fh);
  const fuse_open_out later = h.open(5);
  CHECK(later.backing_id == 7);
  h.release(5, later.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7});
}

TEST_CASE("a backing fd on another host file does not replace the inode's backing",
          "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile lower, upper;  // say, a copy-up happened between the two opens
  h.fs->replies[5] = OpenReply{0, 0, lower.fd()};
  const fuse_open_out a = h.open(5);
  CHECK(a.backing_id == 7);
  h.fs->replies[5] = OpenReply{0, 0, upper.fd()};
  const fuse_open_out b = h.open(5);
  CHECK(b.backing_id == 0);
  CHECK(h.ch.opened_fds.size() == 1);
  CHECK(h.stats().passthrough_fallbacks == 1);
  h.release(5, b.fh);
  CHECK(h.ch.closed_ids.empty());
  h.release(5, a.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7});
}

TEST_CASE("open flags that cannot go with passthrough keep the open ordinary",
          "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file;
  h.fs->replies[5] = OpenReply{0, FOPEN_NONSEEKABLE | FOPEN_STREAM, file.fd()};
  const fuse_open_out out = h.open(5);
  CHECK(out.open_flags == (FOPEN_NONSEEKABLE | FOPEN_STREAM));
  CHECK(out.backing_id == 0);
  CHECK(h.ch.opened_fds.empty());
  SECTION("and so does a backing fd that is not a regular file") {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    h.fs->replies[6] = OpenReply{0, 0, pipe_fds[0]};
    CHECK(h.open(6).backing_id == 0);
    CHECK(h.ch.opened_fds.empty());
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }
}

TEST_CASE("backing fds are ignored without a negotiated passthrough", "[session][passthrough]") {
  Harness h;
  h.ch.supported = false;
  h.init();
  HostFile file;
  h.fs->replies[5] = OpenReply{0, FOPEN_KEEP_CACHE | FOPEN_PASSTHROUGH, file.fd()};
  const fuse_open_out out = h.open(5);
  CHECK(out.open_flags == FOPEN_KEEP_CACHE);  // never FOPEN_PASSTHROUGH without an id
  CHECK(out.backing_id == 0);
  CHECK(h.ch.opened_fds.empty());
  h.release(5, out.fh);
  CHECK(h.ch.closed_ids.empty());
  CHECK(h.stats().passthrough_fallbacks == 0);
}

TEST_CASE("CREATE with a backing fd answers passthrough in its open part",
          "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file;
  h.fs->replies[50] = OpenReply{0, 0, file.fd()};
  fuse_create_in in{};
  in.flags = O_RDWR | O_CREAT;
  in.mode = S_IFREG | 0644;
  h.send(message(FUSE_CREATE, 1, in, "new"));
  REQUIRE(h.ch.error() == 0);
  const auto entry = h.ch.body<fuse_entry_out>();
  const auto open = h.ch.body<fuse_open_out>(sizeof(fuse_entry_out));
  CHECK(entry.nodeid == 50);
  CHECK(open.open_flags == FOPEN_PASSTHROUGH);
  CHECK(open.backing_id == 7);
  h.release(50, open.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7});
}

TEST_CASE("directories and unknown handles never touch backing ids", "[session][passthrough]") {
  Harness h;
  h.init();
  HostFile file;
  h.fs->replies[1] = OpenReply{0, FOPEN_CACHE_DIR, file.fd()};
  fuse_open_in in{};
  h.send(message(FUSE_OPENDIR, 1, in));
  REQUIRE(h.ch.error() == 0);
  const auto out = h.ch.body<fuse_open_out>();
  CHECK(out.open_flags == FOPEN_CACHE_DIR);
  CHECK(out.backing_id == 0);
  fuse_release_in rel{};
  rel.fh = out.fh;
  h.send(message(FUSE_RELEASEDIR, 1, rel));

  h.fs->replies[5] = OpenReply{0, 0, file.fd()};
  const fuse_open_out a = h.open(5);
  CHECK(a.backing_id == 7);
  // A RELEASE for a handle that was never opened (or twice) must not drop the shared id.
  h.release(5, a.fh + 100);
  h.release(9, a.fh);
  CHECK(h.ch.closed_ids.empty());
  h.release(5, a.fh);
  h.release(5, a.fh);
  CHECK(h.ch.closed_ids == std::vector<int>{7});
  CHECK(h.ch.opened_fds.size() == 1);
}
