// The sandfsd mount command's lifecycle: it serves until unmounted or signalled, and in both cases
// leaves no mount behind and exits 0.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

TEST_CASE("sandfsd unmounts itself and exits 0 on SIGTERM and SIGINT", "[lifecycle][fuse]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  INFO("signal " << sig);
  MountedFs m;
  write_file(m.path("f"), "data");
  const std::string dir = m.dir();
  REQUIRE(MountedFs::is_mounted(dir));
  const int status = m.signal_and_wait(sig);
  INFO("server log:\n" << m.log_tail());
  CHECK(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(MountedFs::is_mounted(dir));
  // The mountpoint is an ordinary empty directory again.
  CHECK(list_dir(dir).empty());
}

TEST_CASE("sandfsd exits 0 after umount / also with files still open at that moment",
          "[lifecycle][fuse]") {
  MountedFs m;
  write_file(m.path("f"), "data");
  SYS(::mkdir(m.path("d").c_str(), 0755));
  // umount(2) refuses a busy mount; a lazy unmount detaches it and the server exits once the
  // last reference is gone.
  Fd fd = OPEN(m.path("f").c_str(), O_RDONLY);
  CHECK_ERRNO(EBUSY, ::umount2(m.dir().c_str(), 0));
  SYS(::umount2(m.dir().c_str(), MNT_DETACH));
  CHECK_FALSE(MountedFs::is_mounted(m.dir()));
  CHECK(pread_all(fd, 10, 0) == "data");  // still served through the open fd
  fd.reset();
  m.unmount();  // waits for the server and checks its exit status
}
