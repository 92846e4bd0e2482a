// Copy-up data between two host files (PassthroughFs A over PassthroughFs B) by copy_file_range
// in bounded pieces; the read/write fallback when either side is no host file or the host
// refuses; holes kept either way.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>

#include "unit/backends/dualfs/dualfs_fixture.hpp"
#include "unit/backends/dualfs/host_dir.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

std::string pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>('A' + (i * 13 + i / 1000) % 23);
  return s;
}

constexpr size_t host_chunk = 256 * 1024;

// PassthroughFs A (upper) over PassthroughFs B (lower), read/write chunks of 64 KiB.
struct HostPair {
  HostDir lower, upper;
  DualFixture f{read_b_write_a_policy(),      64 * 1024,
                passthrough_at(upper.path()), WhiteoutStorage::markers,
                passthrough_at(lower.path()), host_chunk};
};

// A sparse host file: `chunk` bytes of data at each of `at`, size `size`.
std::string make_sparse(const std::string& path, std::initializer_list<uint64_t> at, size_t chunk,
                        uint64_t size) {
  std::string expected(size, '\0');
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  REQUIRE(fd >= 0);
  const std::string data = pattern(chunk);
  for (uint64_t off : at) {
    REQUIRE(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) ==
            static_cast<ssize_t>(data.size()));
    expected.replace(off, chunk, data);
  }
  REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
  ::close(fd);
  return expected;
}

}  // namespace

TEST_CASE("copy-up between two host files goes by copy_file_range in pieces",
          "[dualfs][copyup][host]") {
  HostPair h;
  DualFixture& f = h.f;
  const std::string data = pattern(1024 * 1024 + 5);
  f.B.put("dir/big", data);
  REQUIRE(f.write("dir/big", "HEAD", O_RDWR).ok());
  std::string expected = data;
  expected.replace(0, 4, "HEAD");
  CHECK(*f.read("dir/big") == expected);
  CHECK(*f.A.content("dir/big") == expected);
  CHECK(*f.B.content("dir/big") == data);
  CHECK(f.fs->copied_bytes() == data.size());
  CHECK(f.fs->host_copied_bytes() == data.size());
  // No piece larger than host_copy_chunk: 4 full pieces and the tail.
  CHECK(f.a->host_copies == 5);
  CHECK(f.b->reads == 0);
  CHECK(f.a->writes == 1);  // only the guest's own write
}

TEST_CASE("copy-up through copy_file_range keeps holes", "[dualfs][copyup][host]") {
  HostPair h;
  DualFixture& f = h.f;
  const uint64_t size = 16 * 1024 * 1024;
  const std::string expected =
      make_sparse(h.lower.path() + "/sparse", {0, 8 * 1024 * 1024}, 4096, size);
  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0600;
  REQUIRE(f.setattr("sparse", chmod).ok());  // copies up, data included
  CHECK(*f.read("sparse") == expected);
  CHECK(f.fs->host_copied_bytes() == 2 * 4096);
  struct stat st {};
  REQUIRE(::stat((h.upper.path() + "/sparse").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == size);
  // The two 4 KiB extents and whatever the host filesystem rounds them up to, not 16 MiB.
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 1024 * 1024);
}

TEST_CASE("copy-up falls back to read and write when the host refuses copy_file_range",
          "[dualfs][copyup][host]") {
  HostPair h;
  DualFixture& f = h.f;
  const std::string data = pattern(300 * 1024);
  f.B.put("f", data);
  f.a->refuse_host_copy = EXDEV;
  REQUIRE(f.write("f", "xy", O_RDWR, 10).ok());
  std::string expected = data;
  expected.replace(10, 2, "xy");
  CHECK(*f.read("f") == expected);
  CHECK(f.a->host_copies == 1);  // tried once, then the buffer for the rest
  CHECK(f.fs->host_copied_bytes() == 0);
  CHECK(f.fs->copied_bytes() == data.size());
  CHECK(f.b->reads == 5);  // 300 KiB in 64 KiB pieces
}

TEST_CASE("a copy_file_range error that is not a refusal fails the copy-up and leaves no copy",
          "[dualfs][copyup][host]") {
  HostPair h;
  DualFixture& f = h.f;
  f.B.put("f", pattern(100000));
  f.a->refuse_host_copy = ENOSPC;
  Result<Entry> e = f.lookup("f");
  REQUIRE(e.ok());
  Result<OpenReply> o = run_coro(f.fs->open(f.ctx, e->ino, O_RDWR, false));
  REQUIRE_FALSE(o.ok());
  CHECK(o.error() == ENOSPC);
  CHECK_FALSE(h.upper.has("f"));
  CHECK(f.fs->copy_ups() == 0);
  // The temporary went away with the failure.
  CHECK(std::filesystem::is_empty(h.upper.path() + "/.sandfs-dual.staging"));
  // Once the host copies again, so does copy-up.
  f.a->refuse_host_copy = 0;
  REQUIRE(f.write("f", "ok", O_RDWR).ok());
  CHECK(f.fs->copy_ups() == 1);
}

TEST_CASE("copy-up from a host file into a MemFs A copies through the buffer",
          "[dualfs][copyup][host]") {
  HostDir lower;
  memfs::MemFsConfig mc;
  mc.cache = CachePolicy::never;
  DualFixture f(read_b_write_a_policy(), 64 * 1024, memfs::make_memfs(mc), WhiteoutStorage::memory,
                passthrough_at(lower.path()), host_chunk);
  const std::string data = pattern(200 * 1024);
  f.B.put("f", data);
  REQUIRE(f.write("f", "Z", O_RDWR).ok());
  CHECK(*f.read("f") == "Z" + data.substr(1));
  CHECK(f.a->host_copies == 1);  // MemFs answers EXDEV
  CHECK(f.fs->host_copied_bytes() == 0);
  CHECK(f.fs->copied_bytes() == data.size());
}

TEST_CASE("copy-up through the buffer keeps holes of a MemFs B", "[dualfs][copyup]") {
  DualFixture f;
  const uint64_t size = 8 * 1024 * 1024;
  const InodeId b_ino = f.B.put("sparse", "");
  Result<OpenReply> o = run_coro(f.B.fs->open(f.B.ctx, b_ino, O_RDWR, false));
  REQUIRE(o.ok());
  std::string data = pattern(4096);
  iovec iov{data.data(), data.size()};
  IoVecs src{std::span<const iovec>(&iov, 1), data.size()};
  REQUIRE(run_coro(f.B.fs->write(f.B.ctx, b_ino, o->fh, 4 * 1024 * 1024, src, false)).ok());
  SetAttrIn grow;
  grow.valid = fuse::FATTR_SIZE;
  grow.size = size;
  REQUIRE(run_coro(f.B.fs->setattr(f.B.ctx, b_ino, grow)).ok());
  REQUIRE(run_coro(f.B.fs->release(f.B.ctx, b_ino, o->fh, 0)).ok());

  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0600;
  REQUIRE(f.setattr("sparse", chmod).ok());
  CHECK(f.fs->copied_bytes() == 4096);
  std::string expected(size, '\0');
  expected.replace(4 * 1024 * 1024, 4096, data);
  CHECK(*f.read("sparse") == expected);
  CHECK(f.A.attr("sparse").size == size);
  CHECK(f.A.attr("sparse").blocks * 512 <= 64 * 1024);
}

TEST_CASE("requests are served between the pieces of a copy_file_range copy-up",
          "[dualfs][copyup][host]") {
  HostPair h;
  DualFixture& f = h.f;
  f.B.put("big", pattern(16 * host_chunk));
  f.B.put("other", "o");
  const InodeId big = f.ino("big");
  const InodeId other = f.ino("other");
  uint64_t served_at = 0;  // pieces started when the other request had its answer
  auto probe = [&]() -> Task<void> {
    Result<AttrReply> a = co_await f.fs->getattr(f.ctx, other, std::nullopt);
    if (a) served_at = f.a->host_copies;
  };
  auto writer = [&]() -> Task<void> {
    auto ex = co_await boost::asio::this_coro::executor;
    // The second piece starts another request on this same thread.
    f.a->on_host_copy = [&, ex] {
      if (f.a->host_copies == 2) boost::asio::co_spawn(ex, probe(), boost::asio::detached);
    };
    Result<OpenReply> o = co_await f.fs->open(f.ctx, big, O_RDWR, false);
    REQUIRE(o.ok());
    Status r = co_await f.fs->release(f.ctx, big, o->fh, 0);
    (void)r;
  };
  run_coro(writer());
  f.a->on_host_copy = nullptr;
  CHECK(f.a->host_copies == 16);
  CHECK(served_at >= 2);
  CHECK(served_at < 16);  // answered while the copy-up still had pieces to go
  CHECK(f.fs->host_copied_bytes() == 16 * host_chunk);
}

TEST_CASE("copy-up through the buffer reads whole chunks after a small first extent",
          "[dualfs][copyup]") {
  DualFixture f(read_b_write_a_policy(), 64 * 1024);
  const InodeId b_ino = f.B.put("f", "");
  Result<OpenReply> o = run_coro(f.B.fs->open(f.B.ctx, b_ino, O_RDWR, false));
  REQUIRE(o.ok());
  std::string head = pattern(4096);
  std::string body = pattern(256 * 1024);
  for (auto [data, at] : {std::pair{&head, uint64_t{0}}, std::pair{&body, uint64_t{1} << 20}}) {
    iovec iov{data->data(), data->size()};
    IoVecs src{std::span<const iovec>(&iov, 1), data->size()};
    REQUIRE(run_coro(f.B.fs->write(f.B.ctx, b_ino, o->fh, at, src, false)).ok());
  }
  REQUIRE(run_coro(f.B.fs->release(f.B.ctx, b_ino, o->fh, 0)).ok());
  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0600;
  REQUIRE(f.setattr("f", chmod).ok());
  std::string expected((1 << 20) + body.size(), '\0');
  expected.replace(0, head.size(), head);
  expected.replace(1 << 20, body.size(), body);
  CHECK(*f.read("f") == expected);
  CHECK(f.fs->copied_bytes() == head.size() + body.size());
  CHECK(f.b->reads == 1 + 4);  // the 4 KiB extent, then 256 KiB in 64 KiB pieces
}

TEST_CASE("a small file without holes is copied up in one pass and one metadata setattr",
          "[dualfs][copyup]") {
  DualFixture f;
  const std::string data = pattern(4096);
  f.B.put("small", data, 0640);
  const Attr before = f.B.attr("small");
  REQUIRE(f.write("small", "Z", O_RDWR).ok());
  CHECK(*f.read("small") == "Z" + data.substr(1));
  CHECK(*f.B.content("small") == data);
  CHECK(f.b->lseeks == 0);    // no hole map asked for
  CHECK(f.a->setattrs == 1);  // owner, mode and times together; no size set first
  CHECK(f.fs->copied_bytes() == data.size());
  const Attr after = f.A.attr("small");
  CHECK((after.mode & 07777) == 0640);
  CHECK(after.uid == before.uid);
  CHECK(after.gid == before.gid);
  CHECK(after.size == data.size());
}

TEST_CASE("a small sparse file keeps its hole on copy-up", "[dualfs][copyup]") {
  DualFixture f;
  const uint64_t size = 64 * 1024;
  const InodeId b_ino = f.B.put("sparse", "");
  Result<OpenReply> o = run_coro(f.B.fs->open(f.B.ctx, b_ino, O_RDWR, false));
  REQUIRE(o.ok());
  std::string data = pattern(4096);
  iovec iov{data.data(), data.size()};
  IoVecs src{std::span<const iovec>(&iov, 1), data.size()};
  REQUIRE(run_coro(f.B.fs->write(f.B.ctx, b_ino, o->fh, 32 * 1024, src, false)).ok());
  SetAttrIn grow;
  grow.valid = fuse::FATTR_SIZE;
  grow.size = size;
  REQUIRE(run_coro(f.B.fs->setattr(f.B.ctx, b_ino, grow)).ok());
  REQUIRE(run_coro(f.B.fs->release(f.B.ctx, b_ino, o->fh, 0)).ok());

  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0600;
  REQUIRE(f.setattr("sparse", chmod).ok());
  CHECK(f.b->lseeks > 0);
  CHECK(f.fs->copied_bytes() == 4096);
  std::string expected(size, '\0');
  expected.replace(32 * 1024, 4096, data);
  CHECK(*f.read("sparse") == expected);
  CHECK(f.A.attr("sparse").size == size);
  CHECK(f.A.attr("sparse").blocks * 512 <= 4096);
}

TEST_CASE("a setuid file keeps its setuid bit on copy-up: the mode is set after the owner",
          "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("suid", "#!/bin/sh\n", 04755);
  REQUIRE((f.B.attr("suid").mode & 07777) == 04755);
  REQUIRE(f.write("suid", "#", O_RDWR).ok());
  CHECK((f.A.attr("suid").mode & 07777) == 04755);
  CHECK(f.a->setattrs == 2);  // the owner first, then mode and times
}
