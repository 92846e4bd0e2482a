// Session: FUSE_INIT negotiation, request decoding against hostile input, reply encoding,
// interrupts and stats, driven with hand-built messages and a fake backend.
#include <dirent.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "core/protocol/fuse_kernel.hpp"
#include "core/session.hpp"
#include "session_harness.hpp"

namespace asio = boost::asio;
using namespace sandfs;
using namespace sandfs::fuse;
using namespace sandfs::session_test;

TEST_CASE("INIT negotiates only flags both sides support", "[session]") {
  Harness h(false);
  h.fs->caps.handle_killpriv_v2 = true;
  h.fs->caps.atomic_o_trunc = true;
  h.send(Harness::init_msg(45));
  REQUIRE(h.ch.header().error == 0);
  auto out = h.ch.body<fuse_init_out>();
  CHECK(out.major == 7);
  CHECK(out.minor == 45);
  CHECK(out.max_write == 1u << 20);
  CHECK(out.max_pages == 256);
  CHECK(out.max_readahead == 131072);
  const uint64_t flags = out.flags | (uint64_t{out.flags2} << 32);
  CHECK(flags & FUSE_DO_READDIRPLUS);
  CHECK(flags & FUSE_READDIRPLUS_AUTO);
  CHECK(flags & FUSE_PARALLEL_DIROPS);
  CHECK(flags & FUSE_HANDLE_KILLPRIV_V2);
  CHECK(flags & FUSE_ATOMIC_O_TRUNC);
  CHECK(flags & FUSE_MAX_PAGES);
  CHECK_FALSE(flags & FUSE_WRITEBACK_CACHE);  // backend did not ask
  CHECK_FALSE(flags & FUSE_POSIX_LOCKS);      // locks stay in the kernel
  CHECK_FALSE(flags & FUSE_INIT_RESERVED);
  CHECK((flags & ~(uint64_t{0x73fffffb} | (uint64_t{0x5fd} << 32))) == 0);  // nothing unoffered
  CHECK(h.fs->params.handle_killpriv_v2);
  CHECK(h.fs->params.dont_mask);
  CHECK(h.session->initialized());
}

TEST_CASE("INIT with writeback asks the kernel for the write cache", "[session]") {
  Harness h(false);
  h.fs->caps.writeback_cache = true;
  h.send(Harness::init_msg(45));
  auto out = h.ch.body<fuse_init_out>();
  CHECK(out.flags & FUSE_WRITEBACK_CACHE);
  CHECK(h.fs->params.writeback_cache);
}

TEST_CASE("INIT from an older kernel answers its minor and refuses below 7.31", "[session]") {
  SECTION("7.31 is accepted and echoed") {
    Harness h(false);
    h.send(Harness::init_msg(31));
    CHECK(h.ch.header().error == 0);
    CHECK(h.ch.body<fuse_init_out>().minor == 31);
  }
  SECTION("7.30 is refused") {
    Harness h(false);
    h.send(Harness::init_msg(30));
    CHECK(h.ch.header().error == -EPROTO);
    CHECK_FALSE(h.session->initialized());
  }
  SECTION("a newer major gets our major back so the kernel can retry") {
    Harness h(false);
    h.send(Harness::init_msg(0, 8));
    CHECK(h.ch.header().error == 0);
    CHECK(h.ch.body<fuse_init_out>().major == 7);
    CHECK_FALSE(h.session->initialized());
  }
  SECTION("a second INIT is a protocol error") {
    Harness h;
    h.send(Harness::init_msg(45));
    CHECK(h.ch.header().error == -EPROTO);
  }
  SECTION("a truncated INIT is EINVAL") {
    Harness h(false);
    h.send(Msg(FUSE_INIT).add(uint32_t{7}).done());
    CHECK(h.ch.header().error == -EINVAL);
  }
}

TEST_CASE("requests before INIT are refused", "[session]") {
  Harness h(false);
  h.send(Msg(FUSE_LOOKUP).str("a").done());
  CHECK(h.ch.header().error == -EIO);
  CHECK(h.fs->lookups == 0);
}

TEST_CASE("malformed headers are dropped or answered EINVAL / never trusted", "[session]") {
  Harness h;
  SECTION("shorter than a header: no reply") {
    std::vector<std::byte> tiny(12);
    h.send(tiny);
    CHECK(h.ch.replies.empty());
  }
  SECTION("len larger than the buffer") {
    h.send(Msg(FUSE_LOOKUP, 1, 7).str("a").done(4096));
    CHECK(h.ch.header().error == -EINVAL);
    CHECK(h.ch.header().unique == 7);
    CHECK(h.fs->lookups == 0);
  }
  SECTION("len smaller than a header") {
    h.send(Msg(FUSE_LOOKUP).str("a").done(8));
    CHECK(h.ch.header().error == -EINVAL);
  }
  SECTION("extensions longer than the message") {
    auto m = Msg(FUSE_LOOKUP).str("a").done();
    uint16_t ext = 100;
    std::memcpy(m.data() + offsetof(fuse_in_header, total_extlen), &ext, sizeof ext);
    h.send(m);
    CHECK(h.ch.header().error == -EINVAL);
  }
  CHECK(h.session->stats().snapshot().malformed == 1);
}

TEST_CASE("names are validated before they reach the backend", "[session]") {
  Harness h;
  SECTION("no terminating NUL") {
    h.send(Msg(FUSE_LOOKUP).str("abc", false).done());
    CHECK(h.ch.header().error == -EINVAL);
  }
  SECTION("empty") {
    h.send(Msg(FUSE_LOOKUP).str("").done());
    CHECK(h.ch.header().error == -EINVAL);
  }
  SECTION("slash") {
    h.send(Msg(FUSE_LOOKUP).str("a/b").done());
    CHECK(h.ch.header().error == -EPERM);
  }
  SECTION("longer than NAME_MAX") {
    h.send(Msg(FUSE_LOOKUP).str(std::string(256, 'x')).done());
    CHECK(h.ch.header().error == -ENAMETOOLONG);
  }
  CHECK(h.fs->lookups == 0);
  SECTION("255 bytes is fine") {
    h.send(Msg(FUSE_LOOKUP).str(std::string(255, 'x')).done());
    CHECK(h.ch.header().error == 0);
    CHECK(h.fs->last_name.size() == 255);
  }
}

TEST_CASE("LOOKUP encodes the entry and its timeouts", "[session]") {
  Harness h;
  h.send(Msg(FUSE_LOOKUP, 5, 9).str("file").done());
  auto hdr = h.ch.header();
  CHECK(hdr.error == 0);
  CHECK(hdr.unique == 9);
  CHECK(hdr.len == sizeof(fuse_out_header) + sizeof(fuse_entry_out));
  auto e = h.ch.body<fuse_entry_out>();
  CHECK(e.nodeid == 15);
  CHECK(e.entry_valid == 1);
  CHECK(e.entry_valid_nsec == 500'000'000);
  CHECK(e.attr_valid == 2);
  CHECK(e.attr.size == 123);
  CHECK(e.attr.uid == 1000);
  CHECK(e.attr.mode == (S_IFREG | 0644));

  h.ch.replies.clear();
  h.send(Msg(FUSE_LOOKUP).str("missing").done());
  CHECK(h.ch.header().error == -ENOENT);
}

TEST_CASE("MKDIR passes the umask because DONT_MASK was negotiated", "[session]") {
  Harness h;
  fuse_mkdir_in in{0755, 022};
  h.send(Msg(FUSE_MKDIR).add(in).str("d").done());
  CHECK(h.ch.header().error == 0);
  CHECK(h.fs->last_umask == 022);
  CHECK(h.fs->last_name == "d");
  SECTION("a MKDIR without its argument struct is EINVAL") {
    h.ch.replies.clear();
    h.send(Msg(FUSE_MKDIR).add(uint16_t{1}).done());
    CHECK(h.ch.header().error == -EINVAL);
  }
}

TEST_CASE("READ replies with the backend's bytes and rejects absurd offsets", "[session]") {
  Harness h;
  fuse_read_in in{};
  in.fh = 1;
  in.offset = 3;
  in.size = 4096;
  h.send(Msg(FUSE_READ).add(in).done());
  auto hdr = h.ch.header();
  CHECK(hdr.error == 0);
  REQUIRE(hdr.len == sizeof(fuse_out_header) + 10);
  std::string data(reinterpret_cast<const char*>(h.ch.replies[0].data()) + 16, 10);
  CHECK(data == "defghijklm");
  CHECK(h.session->stats().snapshot().bytes_read == 10);

  h.ch.replies.clear();
  in.offset = uint64_t{1} << 63;
  h.send(Msg(FUSE_READ).add(in).done());
  CHECK(h.ch.header().error == -EINVAL);
}

TEST_CASE("WRITE whose size lies about its payload is refused", "[session]") {
  Harness h;
  fuse_write_in in{};
  in.size = 100;
  h.send(Msg(FUSE_WRITE).add(in).str(std::string(10, 'x'), false).done());
  CHECK(h.ch.header().error == -EINVAL);
  CHECK(h.fs->writes == 0);

  h.ch.replies.clear();
  in.size = 10;
  h.send(Msg(FUSE_WRITE).add(in).str(std::string(10, 'x'), false).done());
  CHECK(h.ch.header().error == 0);
  CHECK(h.ch.body<fuse_write_out>().size == 10);
  CHECK(h.fs->writes == 1);

  h.ch.replies.clear();
  in.size = (2u << 20);  // more than max_write
  h.send(Msg(FUSE_WRITE).add(in).done());
  CHECK(h.ch.header().error == -EINVAL);
}

TEST_CASE("handle_write: the data stays where the transport keeps it", "[session]") {
  Harness h;
  std::string data(10, 'y');
  iovec v{data.data(), data.size()};
  const IoVecs payload{std::span<const iovec>(&v, 1), data.size()};
  fuse_write_in in{};
  in.size = 10;
  auto send_write = [&](const std::vector<std::byte>& msg, const IoVecs& d) {
    h.ch.replies.clear();
    asio::co_spawn(h.io, h.session->handle_write(msg, d, h.ch), asio::detached);
    h.io.run();
    h.io.restart();
  };
  const uint32_t full = sizeof(fuse_in_header) + sizeof(fuse_write_in) + 10;
  send_write(Msg(FUSE_WRITE).add(in).done(full), payload);
  CHECK(h.ch.header().error == 0);
  CHECK(h.ch.body<fuse_write_out>().size == 10);
  CHECK(h.fs->writes == 1);
  CHECK(h.fs->last_write_base == data.data());  // no copy in between

  // Lengths that disagree, data in the message as well, or another opcode: EINVAL, no write.
  send_write(Msg(FUSE_WRITE).add(in).done(full + 1), payload);
  CHECK(h.ch.header().error == -EINVAL);
  in.size = 11;
  send_write(Msg(FUSE_WRITE).add(in).done(full), payload);
  CHECK(h.ch.header().error == -EINVAL);
  in.size = 10;
  send_write(Msg(FUSE_WRITE).add(in).str(std::string(4, 'z'), false).done(full + 4), payload);
  CHECK(h.ch.header().error == -EINVAL);
  send_write(Msg(FUSE_GETATTR)
                 .add(fuse_getattr_in{})
                 .done(sizeof(fuse_in_header) + sizeof(fuse_getattr_in) + 10),
             payload);
  CHECK(h.ch.header().error == -EINVAL);
  CHECK(h.fs->writes == 1);
}

TEST_CASE("FORGET and BATCH_FORGET reach the backend and send no reply", "[session]") {
  Harness h;
  h.send(Msg(FUSE_FORGET, 33).add(fuse_forget_in{4}).done());
  fuse_batch_forget_in b{2, 0};
  h.send(
      Msg(FUSE_BATCH_FORGET).add(b).add(fuse_forget_one{40, 1}).add(fuse_forget_one{41, 2}).done());
  CHECK(h.ch.replies.empty());
  REQUIRE(h.fs->forgets.size() == 3);
  CHECK(h.fs->forgets[0] == std::pair<InodeId, uint64_t>{33, 4});
  CHECK(h.fs->forgets[2] == std::pair<InodeId, uint64_t>{41, 2});

  SECTION("a count larger than the message forgets nothing") {
    fuse_batch_forget_in lie{1000000, 0};
    h.send(Msg(FUSE_BATCH_FORGET).add(lie).add(fuse_forget_one{50, 1}).done());
    CHECK(h.fs->forgets.size() == 3);
    CHECK(h.ch.replies.empty());
    CHECK(h.session->stats().snapshot().malformed == 1);
  }
}

TEST_CASE("READDIR packs aligned dirents and stops when the buffer is full", "[session]") {
  Harness h;
  fuse_read_in in{};
  in.size = 4096;
  h.send(Msg(FUSE_READDIR).add(in).done());
  auto hdr = h.ch.header();
  CHECK(hdr.error == 0);
  const auto& r = h.ch.replies[0];
  size_t pos = sizeof(fuse_out_header);
  uint64_t count = 0;
  while (pos < r.size()) {
    fuse_dirent d{};
    std::memcpy(&d, r.data() + pos, sizeof d);
    std::string name(reinterpret_cast<const char*>(r.data()) + pos + sizeof d, d.namelen);
    CHECK(name == "entry" + std::to_string(count));
    CHECK(d.off == count + 1);
    CHECK(d.ino == 100 + count);
    pos += fuse_dirent_size(d.namelen);
    ++count;
  }
  CHECK(pos == r.size());
  CHECK(r.size() - sizeof(fuse_out_header) <= 4096);
  CHECK(count == static_cast<uint64_t>(h.fs->readdir_entries));
  CHECK(count > 100);
}

TEST_CASE("unsupported opcodes answer ENOSYS", "[session]") {
  Harness h;
  h.send(Msg(FUSE_GETLK).add(fuse_lk_in{}).done());
  CHECK(h.ch.header().error == -ENOSYS);
  h.ch.replies.clear();
  h.send(Msg(12345).done());
  CHECK(h.ch.header().error == -ENOSYS);
}

TEST_CASE("exceptions from a backend become ENOMEM or EIO", "[session]") {
  Harness h;
  h.fs->throw_bad_alloc = true;
  h.send(Msg(FUSE_LOOKUP).str("x").done());
  CHECK(h.ch.header().error == -ENOMEM);
  h.fs->throw_bad_alloc = false;
  h.fs->throw_runtime = true;
  h.send(Msg(FUSE_LOOKUP).str("x").done());
  CHECK(h.ch.header(1).error == -EIO);
}

TEST_CASE("INTERRUPT reaches a request that is still running", "[session]") {
  Harness h;
  fuse_read_in in{};
  in.fh = 999;  // the fake waits until interrupted
  in.size = 10;
  auto read = Msg(FUSE_READ, 1, 500).add(in).done();
  auto intr = Msg(FUSE_INTERRUPT, 0, 501).add(fuse_interrupt_in{500}).done();
  asio::co_spawn(h.io, h.session->handle(read, h.ch), asio::detached);
  asio::co_spawn(h.io, h.session->handle(intr, h.ch), asio::detached);
  h.io.run();
  REQUIRE(h.ch.replies.size() == 1);  // INTERRUPT itself has no reply
  CHECK(h.ch.header().unique == 500);
  CHECK(h.ch.header().error == -EINTR);
  CHECK(h.session->stats().snapshot().interrupts == 1);
}

TEST_CASE("stats count requests / errors and errnos per opcode", "[session]") {
  Harness h;
  h.send(Msg(FUSE_LOOKUP).str("a").done());
  h.send(Msg(FUSE_LOOKUP).str("missing").done());
  auto s = h.session->stats().snapshot();
  bool found = false;
  for (const auto& op : s.ops) {
    if (op.opcode == FUSE_LOOKUP) {
      found = true;
      CHECK(op.count == 2);
      CHECK(op.errors == 1);
    }
  }
  CHECK(found);
  REQUIRE_FALSE(s.errors_by_errno.empty());
  CHECK(s.errors_by_errno[0].first == ENOENT);
  CHECK(s.in_flight == 0);
  CHECK(std::string(opcode_name(FUSE_READDIRPLUS)) == "READDIRPLUS");
}

TEST_CASE("DESTROY marks the session finished and later requests fail", "[session]") {
  Harness h;
  h.send(Msg(FUSE_DESTROY).done());
  CHECK(h.ch.header().error == 0);
  CHECK(h.session->destroyed());
  h.send(Msg(FUSE_LOOKUP).str("a").done());
  CHECK(h.ch.header(1).error == -ENODEV);
}
