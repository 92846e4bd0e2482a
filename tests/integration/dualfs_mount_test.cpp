// DualFs through the kernel: `sandfsd mount --backend dual` over host directories, driven with
// ordinary system calls, checking what the mount shows and what each host directory holds.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "host_files.hpp"
#include "mount_fixture.hpp"

using sandfs::it::exists;
using sandfs::it::HostDir;
using sandfs::it::MountedFs;
using sandfs::it::MountSpec;
using sandfs::it::put;
using sandfs::it::slurp;

namespace {

std::vector<std::string> names(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

MountSpec dual_spec(const std::string& a, const std::string& b, const std::string& policy) {
  MountSpec spec;
  spec.backend = "dual";
  spec.flags = {"--a", a, "--b", "passthrough:" + b, "--b-readonly", "--policy", policy};
  return spec;
}

void lower_tree(const HostDir& low) {
  put(low / "etc/conf", "setting=1\n");
  put(low / "etc/other", "other\n");
  put(low / "data/big", std::string(3 << 20, 'b'));
  put(low / "keep", "kept\n");
  std::filesystem::create_directories(low / "empty");
  REQUIRE(::symlink("etc/conf", (low / "link").c_str()) == 0);
}

}  // namespace

TEST_CASE("a scripted session on a dual mount with a persistent upper", "[dualfs]") {
  HostDir low("low");
  HostDir up("up");
  lower_tree(low);
  {
    MountedFs m(dual_spec("passthrough:" + up.path(), low.path(), "read-b-write-a"));
    INFO(m.log_tail());
    CHECK(names(m.dir()) == std::vector<std::string>{"data", "empty", "etc", "keep", "link"});
    CHECK(slurp(m.path("link")) == "setting=1\n");

    // Appending copies the file up; the lower file stays as it was.
    {
      std::ofstream out(m.path("etc/conf"), std::ios::app);
      out << "setting=2\n";
    }
    CHECK(slurp(m.path("etc/conf")) == "setting=1\nsetting=2\n");
    CHECK(slurp(low / "etc/conf") == "setting=1\n");
    CHECK(slurp(up / "etc/conf") == "setting=1\nsetting=2\n");

    // A 3 MiB copy-up through the chunked path.
    {
      const int fd = ::open(m.path("data/big").c_str(), O_WRONLY);
      REQUIRE(fd >= 0);
      REQUIRE(::pwrite(fd, "X", 1, 1 << 20) == 1);
      ::close(fd);
    }
    std::string big(3 << 20, 'b');
    big[1 << 20] = 'X';
    CHECK(slurp(m.path("data/big")) == big);

    // Removing lower names leaves whiteouts; a copied-up file never comes back.
    REQUIRE(::unlink(m.path("keep").c_str()) == 0);
    REQUIRE(::unlink(m.path("etc/conf").c_str()) == 0);
    CHECK_FALSE(exists(m.path("keep")));
    CHECK_FALSE(exists(m.path("etc/conf")));
    CHECK(names(m.path("etc")) == std::vector<std::string>{"other"});
    CHECK(exists(low / "keep"));

    // A merged directory is not empty while the lower side shows entries.
    errno = 0;
    CHECK(::rmdir(m.path("etc").c_str()) == -1);
    CHECK(errno == ENOTEMPTY);
    REQUIRE(::unlink(m.path("etc/other").c_str()) == 0);
    REQUIRE(::rmdir(m.path("etc").c_str()) == 0);
    REQUIRE(::mkdir(m.path("etc").c_str(), 0755) == 0);
    CHECK(names(m.path("etc")).empty());

    // Lower directories cannot be renamed in place: EXDEV, and mv copies instead.
    errno = 0;
    CHECK(::rename(m.path("empty").c_str(), m.path("moved").c_str()) == -1);
    CHECK(errno == EXDEV);
    REQUIRE(::rename(m.path("data/big").c_str(), m.path("big").c_str()) == 0);
    CHECK(slurp(m.path("big")).size() == big.size());
    CHECK(names(m.path("data")).empty());

    // New files and directories land in the upper directory only.
    REQUIRE(::mkdir(m.path("empty/new").c_str(), 0700) == 0);
    put(m.path("empty/new/file"), "fresh");
    CHECK(slurp(up / "empty/new/file") == "fresh");
    CHECK_FALSE(exists(low / "empty/new"));
    // Markers never show through the mount.
    for (const std::string& n : names(m.dir()))
      CHECK(n.rfind(".sandfs-dual.", 0) != 0);
    m.unmount();
  }
  // The whiteouts were kept in the upper directory: a new mount sees the same tree.
  {
    MountedFs m(dual_spec("passthrough:" + up.path(), low.path(), "read-b-write-a"));
    INFO(m.log_tail());
    CHECK(names(m.dir()) == std::vector<std::string>{"big", "data", "empty", "etc", "link"});
    CHECK(names(m.path("etc")).empty());
    CHECK(names(m.path("data")).empty());
    CHECK(slurp(m.path("empty/new/file")) == "fresh");
    m.unmount();
  }
}

TEST_CASE("a memfs upper under every copy-up policy opens lower-only files", "[dualfs]") {
  HostDir low("low");
  lower_tree(low);
  for (const char* policy : {"read-b-write-a", "merge-a-precedence"}) {
    INFO(policy);
    MountedFs m(dual_spec("memfs:capacity=64M", low.path(), policy));
    INFO(m.log_tail());
    CHECK(slurp(m.path("etc/other")) == "other\n");
    put(m.path("etc/other"), "rewritten\n");
    CHECK(slurp(m.path("etc/other")) == "rewritten\n");
    CHECK(slurp(low / "etc/other") == "other\n");
    CHECK(names(m.path("etc")) == std::vector<std::string>{"conf", "other"});
    m.unmount();
  }
  MountedFs only_a(dual_spec("memfs", low.path(), "a-only"));
  CHECK(names(only_a.dir()).empty());
  only_a.unmount();
}

TEST_CASE("concurrent writers of one lower file see one copy-up", "[dualfs]") {
  HostDir low("low");
  const std::string data(8 << 20, 'c');
  put(low / "shared", data);
  MountedFs m(dual_spec("memfs", low.path(), "read-b-write-a"));
  INFO(m.log_tail());
  std::vector<std::thread> writers;
  for (int i = 0; i < 8; ++i) {
    writers.emplace_back([&, i] {
      const int fd = ::open(m.path("shared").c_str(), O_WRONLY);
      if (fd < 0) return;
      const char c = static_cast<char>('0' + i);
      [[maybe_unused]] ssize_t n = ::pwrite(fd, &c, 1, i);
      ::close(fd);
    });
  }
  for (std::thread& t : writers)
    t.join();
  const std::string now = slurp(m.path("shared"));
  REQUIRE(now.size() == data.size());
  CHECK(now.substr(0, 8) == "01234567");
  CHECK(now.substr(8) == data.substr(8));
  m.unmount();
}

// Many copy-ups at once over host directories: different files in a few lower-only directories
// (so their parents are promoted concurrently), one file written by everyone, and getattr of
// other files all the while. Every file ends with B's data plus exactly its writers' appends, B
// is untouched, and all of it is still there after a remount.
TEST_CASE("concurrent copy-ups of different files and of one file over host directories",
          "[dualfs]") {
  HostDir low("low");
  HostDir up("up");
  constexpr int dirs = 4;
  constexpr int files = 48;
  constexpr int threads = 8;
  auto rel = [](int f) { return "d" + std::to_string(f % dirs) + "/sub/f" + std::to_string(f); };
  auto lower_data = [](int f) {
    return std::string(static_cast<size_t>(f) * 4096 + 7, 'a' + f % 26);
  };
  for (int f = 0; f < files; ++f)
    put(low / rel(f), lower_data(f));
  put(low / "shared", "base\n");
  put(low / "watched", "w");
  {
    MountedFs m(dual_spec("passthrough:" + up.path(), low.path(), "read-b-write-a"));
    INFO(m.log_tail());
    std::atomic<bool> done{false};
    std::atomic<int> stat_failures{0};
    std::thread watcher([&] {
      struct stat st {};
      while (!done.load()) {
        if (::stat(m.path("watched").c_str(), &st) != 0 || st.st_size != 1) stat_failures++;
      }
    });
    std::atomic<int> write_failures{0};
    std::vector<std::thread> writers;
    for (int t = 0; t < threads; ++t) {
      writers.emplace_back([&, t] {
        for (int f = t; f < files; f += threads) {
          const int fd = ::open(m.path(rel(f)).c_str(), O_WRONLY | O_APPEND);
          const std::string tail = "+" + std::to_string(f);
          if (fd < 0 || ::write(fd, tail.data(), tail.size()) != static_cast<ssize_t>(tail.size()))
            write_failures++;
          if (fd >= 0) ::close(fd);
        }
        const int fd = ::open(m.path("shared").c_str(), O_WRONLY | O_APPEND);
        const char line[3] = {static_cast<char>('0' + t), '\n', 0};
        if (fd < 0 || ::write(fd, line, 2) != 2) write_failures++;
        if (fd >= 0) ::close(fd);
      });
    }
    for (std::thread& t : writers)
      t.join();
    done = true;
    watcher.join();
    CHECK(write_failures == 0);
    CHECK(stat_failures == 0);
    m.unmount();
  }
  for (int f = 0; f < files; ++f) {
    INFO(rel(f));
    CHECK(slurp(low / rel(f)) == lower_data(f));
  }
  CHECK(slurp(low / "shared") == "base\n");
  MountedFs again(dual_spec("passthrough:" + up.path(), low.path(), "read-b-write-a"));
  INFO(again.log_tail());
  for (int f = 0; f < files; ++f) {
    INFO(rel(f));
    CHECK(slurp(again.path(rel(f))) == lower_data(f) + "+" + std::to_string(f));
    CHECK(slurp(up / rel(f)) == lower_data(f) + "+" + std::to_string(f));
  }
  std::string shared = slurp(again.path("shared"));
  REQUIRE(shared.rfind("base\n", 0) == 0);
  std::vector<char> seen;
  for (size_t i = 5; i + 1 < shared.size() + 1; i += 2) {
    CHECK(shared[i + 1] == '\n');
    seen.push_back(shared[i]);
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<char>{'0', '1', '2', '3', '4', '5', '6', '7'});
  again.unmount();
}

namespace {

// errno of a call that returned -1, 0 for success.
int err(int rc) {
  return rc == 0 ? 0 : errno;
}

int open_err(const std::string& path, int flags) {
  errno = 0;
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

}  // namespace

// The operations most likely to differ between policies, through the kernel, each policy on its
// own mount over a passthrough upper that already holds files: reading a lower-only file,
// writing one, a merged listing, and unlinking a lower file then looking it up again.
TEST_CASE("each policy through the kernel - lower reads and writes and listing and unlink",
          "[dualfs]") {
  for (const char* name : {"read-b-write-a", "a-only", "a-fallback-b", "merge-a-precedence"}) {
    const std::string policy = name;
    INFO(policy);
    HostDir low("low");
    HostDir up("up");
    put(low / "lower", "lower only\n");
    put(low / "gone", "to unlink\n");
    put(low / "both", "lower copy\n");
    put(up / "both", "upper copy\n");
    put(low / "mix/l", "l");
    put(up / "mix/u", "u");
    const bool reads_b = policy != "a-only";
    const bool copy_up = policy != "a-fallback-b";
    MountedFs m(dual_spec("passthrough:" + up.path(), low.path(), policy));
    INFO(m.log_tail());

    // Opening a lower-only file for reading works under every policy that reads B.
    if (reads_b) {
      CHECK(slurp(m.path("lower")) == "lower only\n");
    } else {
      CHECK(open_err(m.path("lower"), O_RDONLY) == ENOENT);
    }
    CHECK(slurp(m.path("both")) == (policy == "read-b-write-a" ? "lower copy\n" : "upper copy\n"));

    // Writing a lower file: a copy-up into the upper directory, or EROFS.
    errno = 0;
    const int fd = ::open(m.path("lower").c_str(), O_WRONLY | O_APPEND);
    const int open_errno = fd < 0 ? errno : 0;
    if (fd >= 0) {
      CHECK(::write(fd, "more\n", 5) == 5);
      ::close(fd);
    }
    if (!reads_b) {
      CHECK(open_errno == ENOENT);
    } else if (copy_up) {
      CHECK(open_errno == 0);
      CHECK(slurp(m.path("lower")) == "lower only\nmore\n");
      CHECK(slurp(up / "lower") == "lower only\nmore\n");
    } else {
      CHECK(open_errno == EROFS);
      CHECK(slurp(m.path("lower")) == "lower only\n");
      CHECK_FALSE(exists(up / "lower"));
    }
    CHECK(slurp(low / "lower") == "lower only\n");

    // A directory on both sides lists both, unless B is not consulted.
    CHECK(names(m.path("mix")) ==
          (reads_b ? std::vector<std::string>{"l", "u"} : std::vector<std::string>{"u"}));

    // Unlinking a lower file, then looking it up.
    errno = 0;
    const int unlinked = err(::unlink(m.path("gone").c_str()));
    if (!reads_b) {
      CHECK(unlinked == ENOENT);
    } else if (copy_up) {
      CHECK(unlinked == 0);
      CHECK_FALSE(exists(m.path("gone")));
      const std::vector<std::string> top = names(m.dir());
      CHECK(std::find(top.begin(), top.end(), "gone") == top.end());
    } else {
      CHECK(unlinked == EROFS);
      CHECK(slurp(m.path("gone")) == "to unlink\n");
    }
    CHECK(slurp(low / "gone") == "to unlink\n");

    // New names land in the upper directory under every policy.
    put(m.path("mix/new"), "n");
    CHECK(slurp(up / "mix/new") == "n");
    CHECK_FALSE(exists(low / "mix/new"));
    m.unmount();
  }
}
