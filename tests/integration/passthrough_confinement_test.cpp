// Confinement: the guest never reaches a host file outside the served root. Host symlinks in the
// root (to "/", to a sibling directory, relative and absolute) are symlinks to the guest and
// resolve in the guest's view; operations on them never act on their host targets; ".." stays in
// the guest's tree; and a host process swapping a directory for a symlink while the guest creates
// and opens through it never gets anything created or read outside.
//
// "The guest's view" is a child chrooted into the mountpoint: like a microVM guest, it resolves
// every path, absolute symlinks included, against the mount's root. (The test process itself
// would resolve an absolute symlink against the host's "/", which is its right, not an escape.)
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

// Runs `step` in a child chrooted into `mnt`; returns what the step wrote as its complaints
// (empty: all as expected). The step appends one line per unexpected result.
std::string in_guest_view(const std::string& mnt, const std::function<void(std::string&)>& step) {
  int out[2];
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(out[0]);
    std::string complaints;
    if (::chroot(mnt.c_str()) != 0 || ::chdir("/") != 0) {
      complaints = "chroot " + mnt + ": " + errno_name(errno) + "\n";
    } else {
      try {
        step(complaints);
      } catch (...) {
        complaints += "the step threw\n";
      }
    }
    const char* p = complaints.data();
    size_t left = complaints.size();
    while (left > 0) {
      const ssize_t n = ::write(out[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(out[1]);
  std::string complaints;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0)
    complaints.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) complaints += "guest child died\n";
  return complaints;
}

// In a guest step: `call` must fail with `want`.
#define GUEST_EXPECT_ERRNO(complaints, want, call)                                   \
  do {                                                                               \
    const int e_ = ::sandfs::it::errno_of([&] { return (call); });                   \
    if (e_ != (want)) {                                                              \
      (complaints) += std::string(#call) + ": got " + ::sandfs::it::errno_name(e_) + \
                      ", expected " + ::sandfs::it::errno_name(want) + "\n";         \
    }                                                                                \
  } while (0)

std::string slurp(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0)
    s.append(buf, static_cast<size_t>(n));
  return s;
}

}  // namespace

TEST_CASE("host symlinks to / and to a sibling are symlinks to the guest / resolved in its view",
          "[pt][confinement]") {
  std::string base;
  PassthroughMount m({.seed = [&](const HostTree& t) {
    base = t.base();
    SYS(::symlink("/", t.root("to-root").c_str()));
    SYS(::symlink("../outside", t.root("to-sibling").c_str()));
    SYS(::symlink(t.outside().c_str(), t.root("to-sibling-abs").c_str()));
    SYS(::symlink(t.outside("canary").c_str(), t.root("to-canary-abs").c_str()));
    SYS(::mkdir(t.root("dir").c_str(), 0755));
    SYS(::symlink("../../outside/canary", t.root("dir/up").c_str()));
    SYS(::symlink("../outside/sub", t.root("dir/sub-link").c_str()));
    write_file(t.root("marker"), "inside the root");
    set_host_xattr(t.outside("canary"), "user.secret", "outside");
  }});
  const std::string outside_before = tree_fingerprint(m.outside());

  // The guest sees symlinks with their exact text.
  const std::pair<const char*, std::string> links[] = {{"to-root", "/"},
                                                       {"to-sibling", "../outside"},
                                                       {"to-sibling-abs", m.outside()},
                                                       {"to-canary-abs", m.outside("canary")},
                                                       {"dir/up", "../../outside/canary"},
                                                       {"dir/sub-link", "../outside/sub"}};
  for (const auto& [name, target] : links) {
    INFO(name);
    CHECK(S_ISLNK(lstat_of(m.path(name)).st_mode));
    std::string buf(4096, '\0');
    const ssize_t n = SYS(::readlink(m.path(name).c_str(), buf.data(), buf.size()));
    CHECK(buf.substr(0, static_cast<size_t>(n)) == target);
  }

  const std::string complaints = in_guest_view(m.dir(), [&](std::string& c) {
    // "/" is the mount's root.
    struct stat root {
    }, via{};
    if (::stat("/", &root) != 0 || ::stat("/to-root", &via) != 0 || root.st_ino != via.st_ino) {
      c += "/to-root is not the guest's root\n";
    }
    const int mk = ::open("/to-root/to-root/marker", O_RDONLY);
    if (mk < 0 || slurp(mk) != "inside the root") c += "/to-root/to-root/marker unreadable\n";
    if (mk >= 0) ::close(mk);
    // Every way out lands on names the mount does not have.
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/to-sibling/canary", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/to-sibling-abs/canary", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/to-canary-abs", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/dir/up", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/dir/sub-link/secret", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/../outside/canary", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/dir/../../../outside/canary", O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open((base + "/outside/canary").c_str(), O_RDONLY));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/to-sibling/new", O_CREAT | O_WRONLY, 0644));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::open("/to-sibling-abs/new", O_CREAT | O_WRONLY, 0644));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::mkdir("/to-sibling-abs/newdir", 0755));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::mkdir("/../../outside/newdir", 0755));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::truncate("/to-canary-abs", 0));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::chmod("/to-canary-abs", 0777));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::unlink("/to-sibling/canary"));
    GUEST_EXPECT_ERRNO(c, ENOENT, ::rename("/marker", "/to-sibling/marker"));
    // O_NOFOLLOW: opening the link itself for writing is refused by the guest kernel.
    GUEST_EXPECT_ERRNO(c, ELOOP, ::open("/to-canary-abs", O_WRONLY | O_NOFOLLOW));
    // Creating through a dangling relative link makes the file where the guest says: in the
    // mount, at /outside/made-by-guest (the guest's own "outside", not the host's).
    ::mkdir("/outside", 0755);
    const int made = ::open("/to-sibling/made-by-guest", O_CREAT | O_WRONLY, 0644);
    if (made < 0)
      c += "create through /to-sibling after mkdir /outside: " + errno_name(errno) + "\n";
    if (made >= 0) ::close(made);
  });
  INFO(complaints);
  CHECK(complaints.empty());
  CHECK(exists(m.host("outside/made-by-guest")));  // inside the root on the host

  // Operations on the links themselves (no follow) must not act on their host targets.
  const std::string link = m.path("to-canary-abs");
  char buf[64];
  const ssize_t got = ::lgetxattr(link.c_str(), "user.secret", buf, sizeof buf);
  CHECK(got < 0);  // the target's xattr is not the link's
  ::lsetxattr(link.c_str(), "user.planted", "x", 1, 0);
  ::lremovexattr(link.c_str(), "user.secret");
  ::lchown(link.c_str(), 1234, 1234);
  const timespec times[2] = {{1, 0}, {1, 0}};
  ::utimensat(AT_FDCWD, link.c_str(), times, AT_SYMLINK_NOFOLLOW);
  ::lchown(m.path("to-sibling-abs").c_str(), 4321, 4321);
  ::utimensat(AT_FDCWD, m.path("to-sibling-abs").c_str(), times, AT_SYMLINK_NOFOLLOW);
  std::string list(4096, '\0');
  const ssize_t ln = ::llistxattr(link.c_str(), list.data(), list.size());
  if (ln > 0)
    CHECK(list.substr(0, static_cast<size_t>(ln)).find("user.secret") == std::string::npos);
  SYS(::unlink(m.path("to-canary-abs").c_str()));
  SYS(::unlink(m.path("to-sibling-abs").c_str()));
  SYS(::rename(m.path("to-sibling").c_str(), m.path("renamed-link").c_str()));
  CHECK(S_ISLNK(lstat_of(m.host("renamed-link")).st_mode));

  CHECK(tree_fingerprint(m.outside()) == outside_before);
  CHECK(read_file(m.outside("canary")) ==
        "outside the root: never to be read or changed through the mount");
}

TEST_CASE("a host process swapping a directory for a symlink never lets the guest out",
          "[pt][confinement][race]") {
  for (const char* cache : {"never", "auto"}) {
    DYNAMIC_SECTION("cache " << cache) {
      PassthroughMount m({.flags = {"--cache", cache}, .seed = [](const HostTree& t) {
                            SYS(::mkdir(t.root("d").c_str(), 0755));
                            SYS(::mkdir(t.root("d/sub").c_str(), 0755));
                            write_file(t.root("d/inside"), "inside");
                            // Names that also exist outside: reading one of these would be the
                            // escape.
                            SYS(::symlink(t.outside().c_str(), t.root("swap-abs").c_str()));
                            SYS(::symlink("../outside", t.root("swap-rel").c_str()));
                            SYS(::symlink(t.outside("sub").c_str(), t.root("d/swap-sub").c_str()));
                          }});
      const std::string outside_before = tree_fingerprint(m.outside());

      // The swapper: exchanges root/d with a symlink to outside (absolute, then relative) and
      // d/sub with a symlink to outside/sub, as fast as it can, until killed.
      const pid_t swapper = ::fork();
      REQUIRE(swapper >= 0);
      if (swapper == 0) {
        const std::string r = m.host();
        for (uint64_t i = 0;; ++i) {
          const char* other = (i & 2) ? "swap-rel" : "swap-abs";
          ::renameat2(AT_FDCWD, (r + "/d").c_str(), AT_FDCWD, (r + "/" + other).c_str(),
                      RENAME_EXCHANGE);
          // Whichever of the two is a directory now has sub and swap-sub.
          for (const char* dir : {"/d", "/swap-abs", "/swap-rel"}) {
            ::renameat2(AT_FDCWD, (r + dir + "/sub").c_str(), AT_FDCWD,
                        (r + dir + "/swap-sub").c_str(), RENAME_EXCHANGE);
          }
        }
      }

      const std::string complaints = in_guest_view(m.dir(), [&](std::string& c) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(4);
        int i = 0, escapes = 0, creates = 0;
        while (std::chrono::steady_clock::now() < until) {
          ++i;
          const std::string n = std::to_string(i);
          for (const char* dir : {"/d", "/d/sub", "/d/swap-sub", "/swap-abs", "/swap-rel"}) {
            const std::string p = std::string(dir);
            // Names that exist only outside the root.
            for (const char* secret : {"/canary", "/secret", "/sub/secret"}) {
              const int fd = ::open((p + secret).c_str(), O_RDONLY);
              if (fd >= 0) {
                ++escapes;
                c += "opened " + p + secret + " (contents '" + slurp(fd) + "')\n";
                ::close(fd);
              }
            }
            const int fd = ::open((p + "/new-" + n).c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
            if (fd >= 0) {
              ++creates;
              ::close(fd);
            }
            creates += ::mkdir((p + "/dir-" + n).c_str(), 0755) == 0;
            creates += ::symlink("x", (p + "/ln-" + n).c_str()) == 0;
            creates += ::mknod((p + "/fifo-" + n).c_str(), S_IFIFO | 0644, 0) == 0;
            ::truncate((p + "/canary").c_str(), 0);
            ::unlink((p + "/secret").c_str());
            ::rename((p + "/new-" + n).c_str(), (p + "/renamed-" + n).c_str());
          }
          if (escapes > 10) break;
        }
        if (creates == 0) c += "nothing was created at all in 4 s (the test proves nothing)\n";
      });
      ::kill(swapper, SIGKILL);
      ::waitpid(swapper, nullptr, 0);

      INFO(complaints);
      CHECK(complaints.empty());
      CHECK(tree_fingerprint(m.outside()) == outside_before);
      CHECK(read_file(m.outside("canary")) ==
            "outside the root: never to be read or changed through the mount");
    }
  }
}
