// Mount helpers that run without a kernel mount: option strings, fuse.conf, mountpoint checks,
// and the fusermount3 fd-passing protocol against a fake helper.
#include "transport/fuse_dev/fuse_mount.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "transport/fuse_dev/fusermount.hpp"

using namespace sandfs::fuse_dev;
namespace stdfs = std::filesystem;

namespace {

struct TempDir {
  stdfs::path path;
  TempDir() {
    char tmpl[] = "/tmp/sandfs-transport-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    stdfs::remove_all(path, ec);
  }
};

std::string slurp(const stdfs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_script(const stdfs::path& p, const std::string& text) {
  std::ofstream(p) << text;
  ::chmod(p.c_str(), 0755);
}

bool have_python() {
  return std::system("python3 -c 'import socket' >/dev/null 2>&1") == 0;
}

}  // namespace

TEST_CASE("kernel mount data names the fd / owner and options", "[transport][mount]") {
  MountConfig c;
  CHECK(kernel_mount_data(c, 7, 1000, 100) ==
        "fd=7,rootmode=40000,user_id=1000,group_id=100,default_permissions,allow_other");
  c.allow_other = false;
  c.default_permissions = false;
  CHECK(kernel_mount_data(c, 3, 0, 0) == "fd=3,rootmode=40000,user_id=0,group_id=0");
}

TEST_CASE("fusermount options carry names and the allow_other decision", "[transport][mount]") {
  MountConfig c;
  CHECK(fusermount_options(c, true) ==
        "fsname=sandfs,subtype=sandfs,default_permissions,allow_other,nosuid,nodev");
  CHECK(fusermount_options(c, false) ==
        "fsname=sandfs,subtype=sandfs,default_permissions,nosuid,nodev");
  c.fsname = "vol1";
  c.default_permissions = false;
  c.nosuid = false;
  c.nodev = false;
  CHECK(fusermount_options(c, false) == "fsname=vol1,subtype=sandfs");
}

TEST_CASE("fuse.conf allows allow_other only with a user_allow_other line", "[transport][mount]") {
  CHECK_FALSE(fuse_conf_allows_other(""));
  CHECK_FALSE(fuse_conf_allows_other("#user_allow_other\n"));
  CHECK_FALSE(fuse_conf_allows_other("# user_allow_other - explanation\nmount_max = 1000\n"));
  CHECK_FALSE(fuse_conf_allows_other("user_allow_otherwise\n"));
  CHECK(fuse_conf_allows_other("user_allow_other"));
  CHECK(fuse_conf_allows_other("# comment\n  user_allow_other \r\nmount_max = 10\n"));
}

TEST_CASE("check_mountpoint explains what is wrong", "[transport][mount]") {
  TempDir dir;
  CHECK(check_mountpoint(dir.path.string()) == stdfs::canonical(dir.path).string());
  CHECK_THROWS_WITH(check_mountpoint((dir.path / "missing").string()),
                    Catch::Contains("does not exist"));
  std::ofstream(dir.path / "file") << "x";
  CHECK_THROWS_WITH(check_mountpoint((dir.path / "file").string()),
                    Catch::Contains("is not a directory"));
  CHECK_THROWS_WITH(check_mountpoint((dir.path / "file" / "sub").string()),
                    Catch::Contains("not a directory"));
  CHECK_THROWS_WITH(check_mountpoint(""), Catch::Contains("no mountpoint"));

  // A relative path comes back absolute, so unmount works after a chdir.
  const auto cwd = stdfs::current_path();
  stdfs::current_path(dir.path);
  stdfs::create_directory("mnt");
  const std::string resolved = check_mountpoint("mnt");
  stdfs::current_path(cwd);
  CHECK(resolved == (stdfs::canonical(dir.path) / "mnt").string());
}

TEST_CASE("mount refuses option values that would split the option list", "[transport][mount]") {
  TempDir dir;
  MountConfig c;
  c.mountpoint = dir.path.string();
  c.fsname = "a,allow_other";
  CHECK_THROWS_AS(FuseMount::mount(c), MountError);
}

TEST_CASE("receive_fd takes the fd from SCM_RIGHTS", "[transport][fusermount]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  UniqueFd ours(pair[0]), theirs(pair[1]);

  UniqueFd sent(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  const int fd = sent.get();
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  REQUIRE(::sendmsg(theirs.get(), &msg, 0) == 1);

  UniqueFd got(receive_fd(ours.get()));
  REQUIRE(got.valid());
  CHECK(got.get() != fd);
  struct stat a {
  }, b{};
  REQUIRE(::fstat(got.get(), &a) == 0);
  REQUIRE(::fstat(fd, &b) == 0);
  CHECK(a.st_rdev == b.st_rdev);
  CHECK((::fcntl(got.get(), F_GETFD) & FD_CLOEXEC) != 0);

  // A message without an fd, then EOF.
  REQUIRE(::send(theirs.get(), "x", 1, 0) == 1);
  CHECK(receive_fd(ours.get()) == -1);
  CHECK(errno == EPROTO);
  theirs.reset();
  CHECK(receive_fd(ours.get()) == -1);
  CHECK(errno == ECONNRESET);
}

TEST_CASE("fusermount_mount runs the helper with _FUSE_COMMFD and gets its fd",
          "[transport][fusermount]") {
  if (!have_python()) {
    WARN("python3 not available; skipping the fake fusermount3 test");
    return;
  }
  TempDir dir;
  const auto fake = dir.path / "fake-fusermount3";
  const auto log = dir.path / "log";
  write_script(fake,
               "#!/usr/bin/env python3\n"
               "import os, socket, sys\n"
               "fd = int(os.environ['_FUSE_COMMFD'])\n"
               "open('" +
                   log.string() +
                   "', 'w').write(' '.join(sys.argv[1:]))\n"
                   "if '-u' in sys.argv: sys.exit(0)\n"
                   "s = socket.socket(fileno=fd)\n"
                   "d = os.open('/dev/null', os.O_RDONLY)\n"
                   "socket.send_fds(s, [b'\\0'], [d])\n");
  UniqueFd fd = fusermount_mount(fake.string(), "fsname=sandfs,subtype=sandfs", "/some/where");
  REQUIRE(fd.valid());
  struct stat st {};
  REQUIRE(::fstat(fd.get(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(slurp(log) == "-o fsname=sandfs,subtype=sandfs -- /some/where");
}

TEST_CASE("fusermount_unmount runs -u -q -z", "[transport][fusermount]") {
  TempDir dir;
  const auto fake = dir.path / "fake-fusermount3";
  const auto log = dir.path / "log";
  write_script(fake, "#!/bin/sh\necho \"$@\" > " + log.string() + "\nexit 0\n");
  CHECK(fusermount_unmount(fake.string(), "/x/y") == 0);
  CHECK(slurp(log) == "-u -q -z -- /x/y\n");
  write_script(fake, "#!/bin/sh\nexit 1\n");
  CHECK(fusermount_unmount(fake.string(), "/x/y") == EIO);
}

TEST_CASE("a failing or missing helper is a clear MountError", "[transport][fusermount]") {
  TempDir dir;
  const auto fake = dir.path / "failing-fusermount3";
  write_script(fake, "#!/bin/sh\necho 'fake: mount failed' >&2\nexit 1\n");
  CHECK_THROWS_WITH(fusermount_mount(fake.string(), "fsname=x", "/m"),
                    Catch::Contains("failed to mount /m") && Catch::Contains("exit status 1"));
  CHECK_THROWS_WITH(fusermount_mount((dir.path / "nope").string(), "fsname=x", "/m"),
                    Catch::Contains("cannot run"));
}

TEST_CASE("a non-root mount goes through fusermount and drops allow_other per fuse.conf",
          "[transport][fusermount]") {
  if (!have_python()) {
    WARN("python3 not available; skipping");
    return;
  }
  TempDir dir;
  const auto fake = dir.path / "fake-fusermount3";
  const auto log = dir.path / "log";
  write_script(fake,
               "#!/usr/bin/env python3\n"
               "import os, socket, sys\n"
               "open('" +
                   log.string() +
                   "', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                   "if '-u' in sys.argv: sys.exit(0)\n"
                   "s = socket.socket(fileno=int(os.environ['_FUSE_COMMFD']))\n"
                   "socket.send_fds(s, [b'\\0'], [os.open('/dev/null', os.O_RDONLY)])\n");
  std::ofstream(dir.path / "fuse.conf") << "#user_allow_other\n";
  stdfs::create_directory(dir.path / "mnt");

  MountConfig c;
  c.mountpoint = (dir.path / "mnt").string();
  c.method = MountConfig::Method::fusermount;
  c.fusermount_program = fake.string();
  c.fuse_conf_path = (dir.path / "fuse.conf").string();
  {
    FuseMount m = FuseMount::mount(c);
    CHECK(m.mounted());
    CHECK(m.via() == FuseMount::Via::fusermount);
    CHECK(m.fd() >= 0);
    // As root fusermount3 itself allows allow_other; a user without user_allow_other loses it.
    CHECK(m.allow_other() == (::getuid() == 0));
    UniqueFd taken = m.take_fd();
    CHECK(m.fd() < 0);
    CHECK(taken.valid());
    if (::geteuid() != 0) {
      CHECK(m.unmount() == 0);  // root would umount2() a mount that does not exist: also 0
    }
  }
  const std::string calls = slurp(log);
  CHECK_THAT(calls, Catch::StartsWith("-o fsname=sandfs,subtype=sandfs,default_permissions"));
  if (::getuid() != 0) {
    CHECK_THAT(calls, !Catch::Contains("allow_other"));
    CHECK_THAT(calls,
               Catch::Contains("-u -q -z -- " + stdfs::canonical(dir.path / "mnt").string()));
  }
}
