// io::Ring: every operation against a temp directory, on io_uring and on the thread pool, with
// the errnos each one propagates.
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "core/io/ring.hpp"
#include "io_test_support.hpp"

namespace asio = boost::asio;
using sandfs::Result;
using sandfs::Status;
using sandfs::Task;
using sandfs::io::Ring;
using sandfs::io::test::mode_name;
using sandfs::io::test::run_coro;
using sandfs::io::test::TempDir;

namespace {

open_how how_of(uint64_t flags, uint64_t mode = 0, uint64_t resolve = 0) {
  open_how how{};
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  return how;
}

// Opens (creating) `name` under `dir` through the ring.
Task<int> create_file(Ring& ring, const TempDir& dir, const char* name) {
  auto fd = co_await ring.openat2(dir.fd(), name, how_of(O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  REQUIRE(fd.ok());
  co_return *fd;
}

Ring::Mode any_mode() {
  const Ring::Mode mode = GENERATE(Ring::Mode::io_uring, Ring::Mode::thread_pool);
  return mode;
}

}  // namespace

TEST_CASE("io::Ring chooses the engine it was asked for", "[io]") {
  asio::io_context ctx;
  Ring uring(ctx, 8, Ring::Mode::io_uring);
  CHECK(uring.uses_io_uring());
  Ring pool(ctx, 8, Ring::Mode::thread_pool);
  CHECK_FALSE(pool.uses_io_uring());
  Ring automatic(ctx);  // io_uring works on the test machines
  CHECK(automatic.uses_io_uring());
  CHECK_THROWS_AS(Ring(ctx, 0), std::invalid_argument);
  CHECK_THROWS_AS(Ring(ctx, 65536), std::invalid_argument);
}

TEST_CASE("io::Ring preadv/pwritev move bytes and report short counts", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  run_coro(ctx, [&]() -> Task<void> {
    const int fd = co_await create_file(ring, dir, "data");

    std::string a = "hello, ";
    std::string b = "world";
    const std::array<iovec, 2> out{{{a.data(), a.size()}, {b.data(), b.size()}}};
    auto written = co_await ring.pwritev(fd, out, 100);
    REQUIRE(written.ok());
    CHECK(*written == 12);

    // One iovec (IORING_OP_READ) and several (READV).
    std::string one(5, '\0');
    const std::array<iovec, 1> in1{{{one.data(), one.size()}}};
    auto n = co_await ring.preadv(fd, in1, 107);
    REQUIRE(n.ok());
    CHECK(*n == 5);
    CHECK(one == "world");

    std::string x(3, '\0'), y(20, '\0');
    const std::array<iovec, 2> in2{{{x.data(), x.size()}, {y.data(), y.size()}}};
    n = co_await ring.preadv(fd, in2, 100);
    REQUIRE(n.ok());
    CHECK(*n == 12);  // short: the file ends at 112
    CHECK(x == "hel");
    CHECK(y.substr(0, 9) == "lo, world");

    // The hole before offset 100 reads as zeros; past the end reads 0 bytes.
    n = co_await ring.preadv(fd, in1, 10);
    CHECK(*n == 5);
    CHECK(one == std::string(5, '\0'));
    n = co_await ring.preadv(fd, in1, 4096);
    REQUIRE(n.ok());
    CHECK(*n == 0);

    // No iovecs at all.
    n = co_await ring.preadv(fd, std::span<const iovec>{}, 0);
    REQUIRE(n.ok());
    CHECK(*n == 0);

    CHECK_ERRNO(co_await ring.close(fd), 0);
  }());
}

TEST_CASE("io::Ring fsync / fdatasync and fallocate", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  run_coro(ctx, [&]() -> Task<void> {
    const int fd = co_await create_file(ring, dir, "f");
    CHECK_ERRNO(co_await ring.fsync(fd, false), 0);
    CHECK_ERRNO(co_await ring.fsync(fd, true), 0);

    CHECK_ERRNO(co_await ring.fallocate(fd, 0, 0, 1 << 20), 0);
    struct stat st {};
    REQUIRE(::fstat(fd, &st) == 0);
    CHECK(st.st_size == 1 << 20);

    // KEEP_SIZE allocates without growing the file.
    CHECK_ERRNO(co_await ring.fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20), 0);
    REQUIRE(::fstat(fd, &st) == 0);
    CHECK(st.st_size == 1 << 20);

    auto bad = co_await ring.fallocate(fd, 0, 0, 0);  // zero length
    CHECK(bad.error() == EINVAL);
    CHECK_ERRNO(co_await ring.close(fd), 0);

    CHECK_ERRNO(co_await ring.fsync(fd, false), EBADF);
  }());
}

TEST_CASE("io::Ring openat2 / statx and close", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  run_coro(ctx, [&]() -> Task<void> {
    auto fd = co_await ring.openat2(dir.fd(), "new", how_of(O_RDWR | O_CREAT | O_EXCL, 0600));
    REQUIRE(fd.ok());
    CHECK(*fd > 2);
    REQUIRE(::write(*fd, "12345", 5) == 5);

    auto st = co_await ring.statx(dir.fd(), "new", AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS);
    REQUIRE(st.ok());
    CHECK(st->stx_size == 5);
    CHECK(S_ISREG(st->stx_mode));
    CHECK((st->stx_mode & 07777) == 0600);

    // By fd, with AT_EMPTY_PATH.
    st = co_await ring.statx(*fd, "", AT_EMPTY_PATH, STATX_SIZE);
    REQUIRE(st.ok());
    CHECK(st->stx_size == 5);

    CHECK_ERRNO(co_await ring.close(*fd), 0);
    CHECK_ERRNO(co_await ring.close(*fd), EBADF);

    // Errors.
    auto again = co_await ring.openat2(dir.fd(), "new", how_of(O_RDWR | O_CREAT | O_EXCL, 0600));
    CHECK(again.error() == EEXIST);
    auto missing = co_await ring.openat2(dir.fd(), "missing", how_of(O_RDONLY));
    CHECK(missing.error() == ENOENT);
    auto escape = co_await ring.openat2(dir.fd(), "../", how_of(O_RDONLY, 0, RESOLVE_BENEATH));
    CHECK(escape.error() == EXDEV);
    auto bad_how =
        co_await ring.openat2(dir.fd(), "new", how_of(O_RDONLY, 0644));  // mode w/o O_CREAT
    CHECK(bad_how.error() == EINVAL);
    auto nost = co_await ring.statx(dir.fd(), "missing", 0, STATX_BASIC_STATS);
    CHECK(nost.error() == ENOENT);
    nost = co_await ring.statx(-1, "", AT_EMPTY_PATH, STATX_BASIC_STATS);
    CHECK(nost.error() == EBADF);
  }());
}

TEST_CASE("io::Ring fstatx: in-core calls run on the ring's thread, complete through the loop",
          "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  const int fd = ::openat(dir.fd(), "f", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "abc", 3) == 3);
  run_coro(ctx, [&]() -> Task<void> {
    const Ring::Stats before = ring.stats();
    auto in_core = co_await ring.fstatx(fd, 0, STATX_BASIC_STATS, Ring::Residency::in_core);
    REQUIRE(in_core.ok());
    CHECK(in_core->stx_size == 3);
    CHECK((in_core->stx_mode & 07777) == 0640);
    const Ring::Stats after = ring.stats();
    CHECK(after.inline_calls == before.inline_calls + 1);
    CHECK(after.sqes == before.sqes);
    CHECK(after.pool_jobs == before.pool_jobs);

    // Unknown residency takes the engine's path, with the same answer.
    auto queued = co_await ring.fstatx(fd, 0, STATX_BASIC_STATS, Ring::Residency::unknown);
    REQUIRE(queued.ok());
    CHECK(queued->stx_ino == in_core->stx_ino);
    CHECK(ring.stats().inline_calls == after.inline_calls);

    // Errors come back the same way.
    auto bad = co_await ring.fstatx(-1, 0, STATX_BASIC_STATS, Ring::Residency::in_core);
    CHECK(bad.error() == EBADF);
  }());
  // Never completed inside the call that started it: the handler runs from the io_context.
  bool done = false;
  ring.fstatx(fd, 0, STATX_SIZE, Ring::Residency::in_core,
              [&](Result<struct statx> st) { done = st.ok(); });
  CHECK_FALSE(done);
  ctx.restart();
  ctx.run();
  CHECK(done);
  ::close(fd);
}

TEST_CASE("io::Ring getxattr through a /proc/self/fd magic link", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  const int fd = ::openat(dir.fd(), "f", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const int opath = ::openat(dir.fd(), "f", O_PATH | O_CLOEXEC);
  REQUIRE(opath >= 0);
  const bool have_xattrs = ::fsetxattr(fd, "user.sandfs.test", "hello", 5, 0) == 0;
  const std::string path = "/proc/self/fd/" + std::to_string(opath);
  run_coro(ctx, [&]() -> Task<void> {
    char buf[64];
    if (have_xattrs) {
      auto n = co_await ring.getxattr(path.c_str(), "user.sandfs.test", buf, sizeof buf);
      REQUIRE(n.ok());
      CHECK(std::string(buf, static_cast<size_t>(*n)) == "hello");
      auto small = co_await ring.getxattr(path.c_str(), "user.sandfs.test", buf, 2);
      CHECK(small.error() == ERANGE);
      auto size = co_await ring.getxattr(path.c_str(), "user.sandfs.test", nullptr, 0);
      REQUIRE(size.ok());
      CHECK(*size == 5);
    }
    auto missing = co_await ring.getxattr(path.c_str(), "user.sandfs.none", buf, sizeof buf);
    CHECK(missing.error() == (have_xattrs ? ENODATA : EOPNOTSUPP));
    auto no_file = co_await ring.getxattr("/proc/self/fd/999999", "user.x", buf, sizeof buf);
    CHECK(no_file.error() == ENOENT);
  }());
  ::close(opath);
  ::close(fd);
}

TEST_CASE("io::Ring directory operations", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  TempDir dir;
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  run_coro(ctx, [&]() -> Task<void> {
    const int d = dir.fd();

    CHECK_ERRNO(co_await ring.mkdirat(d, "sub", 0750), 0);
    CHECK_ERRNO(co_await ring.mkdirat(d, "sub", 0750), EEXIST);
    CHECK_ERRNO(co_await ring.mkdirat(d, "nope/sub", 0750), ENOENT);
    struct stat st {};
    REQUIRE(::fstatat(d, "sub", &st, 0) == 0);
    CHECK(S_ISDIR(st.st_mode));

    CHECK_ERRNO(co_await ring.close(co_await create_file(ring, dir, "file")), 0);

    // symlinkat: target first, then where the link goes.
    CHECK_ERRNO(co_await ring.symlinkat("file", d, "link"), 0);
    CHECK_ERRNO(co_await ring.symlinkat("file", d, "link"), EEXIST);
    char target[64] = {};
    REQUIRE(::readlinkat(d, "link", target, sizeof target - 1) == 4);
    CHECK(std::string(target) == "file");

    CHECK_ERRNO(co_await ring.linkat(d, "file", d, "hard", 0), 0);
    CHECK_ERRNO(co_await ring.linkat(d, "file", d, "hard", 0), EEXIST);
    CHECK_ERRNO(co_await ring.linkat(d, "missing", d, "hard2", 0), ENOENT);
    auto sx = co_await ring.statx(d, "file", 0, STATX_NLINK);
    REQUIRE(sx.ok());
    CHECK(sx->stx_nlink == 2);

    CHECK_ERRNO(co_await ring.renameat2(d, "hard", d, "sub/moved", 0), 0);
    CHECK(::faccessat(d, "sub/moved", F_OK, 0) == 0);
    CHECK_ERRNO(co_await ring.renameat2(d, "file", d, "link", RENAME_NOREPLACE), EEXIST);
    CHECK_ERRNO(co_await ring.renameat2(d, "missing", d, "x", 0), ENOENT);
    CHECK_ERRNO(co_await ring.renameat2(d, "file", d, "link", RENAME_EXCHANGE), 0);
    REQUIRE(::fstatat(d, "file", &st, AT_SYMLINK_NOFOLLOW) == 0);
    CHECK(S_ISLNK(st.st_mode));

    CHECK_ERRNO(co_await ring.unlinkat(d, "sub", 0), EISDIR);
    CHECK_ERRNO(co_await ring.unlinkat(d, "sub", AT_REMOVEDIR), ENOTEMPTY);
    CHECK_ERRNO(co_await ring.unlinkat(d, "sub/moved", 0), 0);
    CHECK_ERRNO(co_await ring.unlinkat(d, "sub", AT_REMOVEDIR), 0);
    CHECK_ERRNO(co_await ring.unlinkat(d, "sub", AT_REMOVEDIR), ENOENT);
    CHECK_ERRNO(co_await ring.unlinkat(-1, "x", 0), EBADF);
  }());
}

TEST_CASE("io::Ring propagates EBADF and EINVAL from data operations", "[io]") {
  const Ring::Mode mode = any_mode();
  INFO("mode " << mode_name(mode));
  asio::io_context ctx;
  Ring ring(ctx, 16, mode);
  run_coro(ctx, [&]() -> Task<void> {
    char buf[16];
    const std::array<iovec, 1> iov{{{buf, sizeof buf}}};
    CHECK_ERRNO(co_await ring.preadv(-1, iov, 0), EBADF);
    CHECK_ERRNO(co_await ring.pwritev(-1, iov, 0), EBADF);

    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK_ERRNO(co_await ring.pwritev(fd, iov, 0), EBADF);  // not open for writing
    // UINT64_MAX would mean "the file position" to io_uring; both engines refuse it.
    CHECK_ERRNO(co_await ring.preadv(fd, iov, UINT64_MAX), EINVAL);
    CHECK_ERRNO(co_await ring.preadv(fd, iov, uint64_t{1} << 63), EINVAL);
    ::close(fd);
  }());
}
