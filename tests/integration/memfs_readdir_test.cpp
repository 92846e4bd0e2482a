// Directory listing through the kernel: a large directory read completely and exactly once,
// seekdir to a saved position, and listing while entries are being deleted.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <map>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

struct Listed {
  std::map<std::string, int> count;      // name -> times returned
  std::map<std::string, unsigned> type;  // name -> d_type
  std::map<std::string, uint64_t> ino;   // name -> d_ino
};

// Reads a whole directory with getdents64 and a small buffer (many round trips).
Listed getdents_all(int dirfd, size_t bufsize) {
  Listed out;
  std::vector<char> buf(bufsize);
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dirfd, buf.data(), buf.size());
    if (n < 0) FAIL("getdents64: " << errno_name(errno));
    if (n == 0) break;
    for (long pos = 0; pos < n;) {
      auto* d = reinterpret_cast<dirent64*>(buf.data() + pos);
      out.count[d->d_name]++;
      out.type[d->d_name] = d->d_type;
      out.ino[d->d_name] = d->d_ino;
      pos += d->d_reclen;
    }
  }
  return out;
}

std::string name_of(int i) {
  return "entry-" + std::to_string(i);
}

// Every 100th entry a directory, every 100th + 1 a symlink, every 100th + 2 a fifo.
unsigned expected_type(int i) {
  switch (i % 100) {
    case 0:
      return DT_DIR;
    case 1:
      return DT_LNK;
    case 2:
      return DT_FIFO;
    default:
      return DT_REG;
  }
}

void populate(const MountedFs& m, const std::string& dir, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string p = m.path(dir + "/" + name_of(i));
    switch (expected_type(i)) {
      case DT_DIR:
        SYS(::mkdir(p.c_str(), 0755));
        break;
      case DT_LNK:
        SYS(::symlink("somewhere", p.c_str()));
        break;
      case DT_FIFO:
        SYS(::mknod(p.c_str(), S_IFIFO | 0644, 0));
        break;
      default:
        SYS(::mknod(p.c_str(), S_IFREG | 0644, 0));
    }
  }
}

}  // namespace

TEST_CASE("readdir of 10000 entries returns every name exactly once with the right d_type",
          "[readdir]") {
  constexpr int n = 10'000;
  MountedFs m;
  SYS(::mkdir(m.path("big").c_str(), 0755));
  populate(m, "big", n);

  for (size_t bufsize : {size_t{1024}, size_t{32768}}) {
    INFO("getdents64 buffer " << bufsize);
    Fd dir = OPEN(m.path("big").c_str(), O_RDONLY | O_DIRECTORY);
    const Listed l = getdents_all(dir, bufsize);
    CHECK(l.count.size() == n + 2);
    CHECK(l.count.count(".") == 1);
    CHECK(l.count.count("..") == 1);
    int missing = 0, repeated = 0, wrong_type = 0, unknown = 0;
    for (int i = 0; i < n; ++i) {
      const auto it = l.count.find(name_of(i));
      if (it == l.count.end()) {
        ++missing;
        continue;
      }
      if (it->second != 1) ++repeated;
      if (l.type.at(name_of(i)) != expected_type(i)) ++wrong_type;
    }
    for (const auto& [name, times] : l.count) {
      if (name != "." && name != ".." && !name.starts_with("entry-")) ++unknown;
      if (times != 1 && (name == "." || name == "..")) ++repeated;
    }
    CHECK(missing == 0);
    CHECK(repeated == 0);
    CHECK(wrong_type == 0);
    CHECK(unknown == 0);
    // d_ino is the inode number stat reports, and no two entries share one.
    std::set<uint64_t> inos;
    int ino_mismatch = 0;
    for (int i = 0; i < n; ++i) {
      const auto it = l.ino.find(name_of(i));
      if (it == l.ino.end()) continue;
      inos.insert(it->second);
      if (i % 50 == 0 && lstat_of(m.path("big/" + name_of(i))).st_ino != it->second) {
        ++ino_mismatch;
      }
    }
    CHECK(ino_mismatch == 0);
    CHECK(inos.size() == static_cast<size_t>(n) - static_cast<size_t>(missing));
    CHECK(l.ino.at(".") == stat_of(m.path("big")).st_ino);
    CHECK(l.type.at(".") == DT_DIR);
    CHECK(l.type.at("..") == DT_DIR);
  }
  // The directory's own link count reflects its 100 subdirectories.
  CHECK(stat_of(m.path("big")).st_nlink == 2 + n / 100);
}

TEST_CASE("seekdir to a telldir position continues from the same entry", "[readdir]") {
  MountedFs m;
  SYS(::mkdir(m.path("d").c_str(), 0755));
  populate(m, "d", 1000);
  DIR* d = ::opendir(m.path("d").c_str());
  REQUIRE(d != nullptr);
  for (int i = 0; i < 400; ++i)
    REQUIRE(::readdir(d) != nullptr);
  const long pos = ::telldir(d);
  std::vector<std::string> rest1, rest2;
  while (dirent* e = ::readdir(d))
    rest1.emplace_back(e->d_name);
  ::seekdir(d, pos);
  while (dirent* e = ::readdir(d))
    rest2.emplace_back(e->d_name);
  ::rewinddir(d);
  int all = 0;
  while (::readdir(d) != nullptr)
    ++all;
  ::closedir(d);
  CHECK(rest1.size() == 1002 - 400);
  CHECK(rest1 == rest2);
  CHECK(all == 1002);
}

TEST_CASE("readdir while deleting: no repeats / no misses among the entries still there",
          "[readdir]") {
  constexpr int n = 3000;
  const std::string mode = GENERATE(as<std::string>{}, "always", "never");
  INFO("--cache " << mode);
  MountedFs m({"--cache", mode});
  SYS(::mkdir(m.path("d").c_str(), 0755));
  for (int i = 0; i < n; ++i) {
    SYS(::mknod(m.path("d/" + name_of(i)).c_str(), S_IFREG | 0644, 0));
  }

  // Each entry is unlinked right after it is returned; in addition, every 7th step removes an
  // entry not returned yet (a "victim"). POSIX leaves open whether a victim still shows up, but
  // every other entry must be returned, and nothing may be returned twice.
  Fd dirfd = OPEN(m.path("d").c_str(), O_RDONLY | O_DIRECTORY);
  std::map<std::string, int> seen;
  std::set<std::string> victims;
  int next_victim = n - 1;
  int steps = 0;
  std::vector<char> buf(2048);  // small: many getdents calls interleave with the unlinks
  for (;;) {
    const long got = ::syscall(SYS_getdents64, dirfd.get(), buf.data(), buf.size());
    REQUIRE(got >= 0);
    if (got == 0) break;
    for (long pos = 0; pos < got;) {
      auto* d = reinterpret_cast<dirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      const std::string name = d->d_name;
      if (name == "." || name == "..") continue;
      if (++seen[name] > 1) continue;
      if (!victims.contains(name)) {
        SYS(::unlinkat(AT_FDCWD, m.path("d/" + name).c_str(), 0));
      }
      if (++steps % 7 == 0) {
        while (next_victim >= 0 &&
               (seen.contains(name_of(next_victim)) || victims.contains(name_of(next_victim)))) {
          --next_victim;
        }
        if (next_victim >= 0) {
          victims.insert(name_of(next_victim));
          SYS(::unlink(m.path("d/" + name_of(next_victim)).c_str()));
        }
      }
    }
  }
  int repeated = 0, missing = 0;
  for (const auto& [name, times] : seen) {
    if (times > 1) ++repeated;
  }
  for (int i = 0; i < n; ++i) {
    if (!victims.contains(name_of(i)) && !seen.contains(name_of(i))) ++missing;
  }
  INFO(victims.size() << " victims, " << seen.size() << " names seen");
  CHECK(repeated == 0);
  CHECK(missing == 0);
  CHECK(victims.size() > 100);
  // Everything is gone and the directory can be removed.
  CHECK(list_dir(m.path("d")).empty());
  SYS(::rmdir(m.path("d").c_str()));
}
