// Each cache policy (and the writeback cache) through the kernel: read/write, append, truncate and
// shared mmap, with what reached the server checked by O_DIRECT reads (which bypass the page
// cache and go to the server).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

// What the server holds: an O_DIRECT read through a fresh fd, into an aligned buffer.
std::string server_view(const std::string& path, size_t len) {
  Fd fd = OPEN(path.c_str(), O_RDONLY | O_DIRECT);
  const size_t cap = (len + 4095) / 4096 * 4096 + 4096;
  void* raw = nullptr;
  REQUIRE(::posix_memalign(&raw, 4096, cap) == 0);
  std::unique_ptr<char, decltype(&std::free)> buf(static_cast<char*>(raw), &std::free);
  size_t done = 0;
  for (;;) {
    const ssize_t n = SYS(::pread(fd, buf.get() + done, cap - done, static_cast<off_t>(done)));
    if (n == 0) break;
    done += static_cast<size_t>(n);
    if (done >= cap) break;
  }
  return std::string(buf.get(), done);
}

struct Mapping {
  Mapping(int fd, size_t len, int prot) : len_(len) {
    addr_ = ::mmap(nullptr, len, prot, MAP_SHARED, fd, 0);
  }
  ~Mapping() {
    if (ok()) ::munmap(addr_, len_);
  }
  bool ok() const { return addr_ != MAP_FAILED; }
  char* data() const { return static_cast<char*>(addr_); }
  void* addr_;
  size_t len_;
};

}  // namespace

TEST_CASE("every cache mode: read / write / append / truncate / shared mmap", "[cache]") {
  const std::string mode = GENERATE(as<std::string>{}, "never", "auto", "always", "writeback");
  INFO("mode " << mode);
  std::vector<std::string> flags;
  if (mode == "writeback") {
    flags = {"--cache", "always", "--writeback"};
  } else {
    flags = {"--cache", mode};
  }
  MountedFs m(flags);
  const std::string f = m.path("f");

  // Plain I/O, then what the server got.
  const std::string data = pattern(11, 0, 200'000);
  {
    Fd fd = OPEN(f.c_str(), O_CREAT | O_RDWR, 0644);
    pwrite_all(fd, data, 0);
    CHECK(pread_all(fd, 300'000, 0) == data);
    SYS(::fsync(fd));
    REQUIRE(fd.close() == 0);
  }
  CHECK(stat_of(f).st_size == 200'000);
  CHECK(server_view(f, 200'000) == data);
  CHECK(read_file(f) == data);

  // Append and truncate, seen by a second fd and by the server.
  {
    Fd a = OPEN(f.c_str(), O_WRONLY | O_APPEND);
    pwrite_all(a, "appended", 0);  // pwrite on O_APPEND appends on Linux
    Fd r = OPEN(f.c_str(), O_RDONLY);
    CHECK(pread_all(r, 8, 200'000) == "appended");
    SYS(::ftruncate(a, 100'000));
    CHECK(fstat_of(r).st_size == 100'000);
    CHECK(pread_all(r, 200'000, 0) == data.substr(0, 100'000));
    SYS(::fsync(a));
  }
  CHECK(server_view(f, 100'000) == data.substr(0, 100'000));

  // Shared writable mapping: stores reach the server after msync.
  constexpr size_t map_len = 64 * 1024;
  {
    Fd fd = OPEN(m.path("mapped").c_str(), O_CREAT | O_RDWR, 0644);
    SYS(::ftruncate(fd, map_len));
    Mapping map(fd, map_len, PROT_READ | PROT_WRITE);
    INFO("mmap: " << (map.ok() ? "ok" : errno_name(errno)));
    REQUIRE(map.ok());
    const std::string content = pattern(12, 0, map_len);
    std::copy(content.begin(), content.end(), map.data());
    SYS(::msync(map.data(), map_len, MS_SYNC));
    CHECK(server_view(m.path("mapped"), map_len) == content);
    CHECK(pread_all(fd, map_len, 0) == content);

    // A write(2) is visible through the mapping.
    pwrite_all(fd, "via write", 1000);
    CHECK(std::string(map.data() + 1000, 9) == "via write");
  }
  // A read-only mapping of a file written with write(2).
  {
    Fd fd = OPEN(f.c_str(), O_RDONLY);
    Mapping map(fd, 100'000, PROT_READ);
    REQUIRE(map.ok());
    CHECK(std::string(map.data(), 100'000) == data.substr(0, 100'000));
  }
}

TEST_CASE("every cache mode: other fds / names and stat see each change at once", "[cache]") {
  const std::string mode = GENERATE(as<std::string>{}, "never", "auto", "always");
  INFO("--cache " << mode);
  MountedFs m({"--cache", mode});
  const std::string f = m.path("f");
  write_file(f, "version one");
  Fd r = OPEN(f.c_str(), O_RDONLY);
  CHECK(pread_all(r, 100, 0) == "version one");
  write_file(f, "v2");  // O_TRUNC through another fd
  CHECK(pread_all(r, 100, 0) == "v2");
  CHECK(fstat_of(r).st_size == 2);
  SYS(::rename(f.c_str(), m.path("g").c_str()));
  CHECK_FALSE(exists(f));
  write_file(f, "v3 under the old name");
  CHECK(read_file(f) == "v3 under the old name");
  CHECK(read_file(m.path("g")) == "v2");
  SYS(::chmod(m.path("g").c_str(), 0600));
  CHECK(fstat_of(r).st_mode == (S_IFREG | 0600));
}

TEST_CASE(
    "writeback cache: partial-page writes merge with the server's data - size and mtime "
    "reach the server",
    "[cache]") {
  MountedFs m({"--cache", "always", "--writeback"});
  const std::string f = m.path("f");
  const std::string base = pattern(13, 0, 3 * 4096 + 100);
  write_file(f, base);
  {
    // Drop the clean pages so the next partial write has to read the page from the server.
    Fd fd = OPEN(f.c_str(), O_RDONLY);
    SYS(::fsync(fd));
    REQUIRE(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
  }
  const timespec old[2] = {{1'000, 0}, {1'000, 0}};
  SYS(::utimensat(AT_FDCWD, f.c_str(), old, 0));
  {
    Fd fd = OPEN(f.c_str(), O_WRONLY);
    pwrite_all(fd, "0123456789", 5000);    // inside page 1
    pwrite_all(fd, "tail!", base.size());  // extends the file within its last page
    REQUIRE(fd.close() == 0);
  }
  std::string expect = base;
  expect.replace(5000, 10, "0123456789");
  expect += "tail!";
  CHECK(stat_of(f).st_size == static_cast<off_t>(expect.size()));
  CHECK(read_file(f) == expect);
  {
    Fd fd = OPEN(f.c_str(), O_RDONLY);
    SYS(::fsync(fd));
  }
  CHECK(server_view(f, expect.size()) == expect);
  CHECK(stat_of(f).st_mtim.tv_sec > 1'000);
}

TEST_CASE("with --max-write 4K / large reads and writes split into many requests stay intact",
          "[cache]") {
  MountedFs m({"--max-write", "4K", "--cache", "never"});
  const std::string data = pattern(14, 0, (1 << 20) + 12345);
  write_file(m.path("f"), data);
  CHECK(read_file(m.path("f")) == data);
  Fd fd = OPEN(m.path("f").c_str(), O_RDWR);
  pwrite_all(fd, std::string(300'000, 'w'), 4000);
  std::string expect = data;
  expect.replace(4000, 300'000, std::string(300'000, 'w'));
  CHECK(pread_all(fd, expect.size() + 1, 0) == expect);
}

TEST_CASE("a shared mapping of an unlinked file still writes through to the server", "[cache]") {
  MountedFs m;
  const std::string f = m.path("gone");
  Fd fd = OPEN(f.c_str(), O_CREAT | O_RDWR, 0644);
  SYS(::ftruncate(fd, 8192));
  Mapping map(fd, 8192, PROT_READ | PROT_WRITE);
  REQUIRE(map.ok());
  SYS(::unlink(f.c_str()));
  std::fill(map.data(), map.data() + 8192, 'u');
  SYS(::msync(map.data(), 8192, MS_SYNC));
  // Drop the page cache copy, so the next read must come from the server.
  REQUIRE(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
  CHECK(pread_all(fd, 8192, 0) == std::string(8192, 'u'));
}
