// Big directories: 100,000 entries listed completely through the mount, with getdents64 and with
// `ls -f`, while entries made on the host and through the mount mix.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

// Every name in `dir` by raw getdents64 with a 32 KiB buffer; duplicates are counted.
std::multiset<std::string> getdents_names(const std::string& dir) {
  Fd fd = OPEN(dir.c_str(), O_RDONLY | O_DIRECTORY);
  std::multiset<std::string> names;
  alignas(8) char buf[32768];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, fd.get(), buf, sizeof buf);
    REQUIRE(n >= 0);
    if (n == 0) break;
    for (long at = 0; at < n;) {
      struct Entry {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const auto* e = reinterpret_cast<const Entry*>(buf + at);
      const std::string name = e->name;
      if (name != "." && name != "..") names.insert(name);
      at += e->reclen;
    }
  }
  return names;
}

std::string name_of(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "entry-%06d", i);
  return buf;
}

}  // namespace

TEST_CASE("100000 entries are listed completely by getdents64 and ls -f", "[pt][readdir][big]") {
  constexpr int host_made = 90'000;
  constexpr int guest_made = 10'000;
  PassthroughMount m({.seed = [](const HostTree& t) {
    SYS(::mkdir(t.root("big").c_str(), 0755));
    for (int i = 0; i < host_made; ++i) {
      const int fd = ::open(t.root("big/" + name_of(i)).c_str(), O_CREAT | O_WRONLY, 0644);
      REQUIRE(fd >= 0);
      ::close(fd);
    }
  }});
  for (int i = host_made; i < host_made + guest_made; ++i) {
    const int fd = ::open(m.path("big/" + name_of(i)).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0) FAIL("create " << name_of(i) << ": " << errno_name(errno));
    ::close(fd);
  }
  for (int pass = 0; pass < 2; ++pass) {
    INFO("pass " << pass);
    const auto names = getdents_names(m.path("big"));
    CHECK(names.size() == 100'000);
    std::set<std::string> unique(names.begin(), names.end());
    CHECK(unique.size() == 100'000);
    CHECK(unique.count(name_of(0)) == 1);
    CHECK(unique.count(name_of(99'999)) == 1);
    CHECK(*unique.begin() == name_of(0));
    CHECK(*unique.rbegin() == name_of(99'999));
  }
  FILE* ls = ::popen(("ls -f '" + m.path("big") + "' | wc -l").c_str(), "r");
  REQUIRE(ls != nullptr);
  char out[64] = {};
  REQUIRE(std::fgets(out, sizeof out, ls) != nullptr);
  CHECK(::pclose(ls) == 0);
  CHECK(std::stol(out) == 100'002);  // with . and ..
}
