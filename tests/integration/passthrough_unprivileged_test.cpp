// An unprivileged server: sandfsd runs as uid/gid 65534 and mounts through fusermount3. The test
// process (root on the host, and so root to the guest filesystem) chowns, chmods 4755 and mknods
// a device through the mount; the guest sees all of it while the host files stay owned by the
// server's user with modes 0600/0700.
//
// On this machine /dev/fuse is 0600 and /etc/fuse.conf lacks user_allow_other. Rather than change
// either for the whole host, the test moves itself into a private mount namespace and bind-mounts
// a 0666 device node (made on a private tmpfs) over /dev/fuse and a fuse.conf with
// user_allow_other over /etc/fuse.conf. The server and fusermount3 inherit that namespace; nothing
// outside it sees a change, and it disappears with the test process.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

constexpr uid_t server_uid = 65534;
constexpr gid_t server_gid = 65534;

// Once per process: the private namespace with an open /dev/fuse and user_allow_other.
void enter_private_fuse_namespace() {
  static bool done = false;
  if (done) return;
  SYS(::unshare(CLONE_NEWNS));
  SYS(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr));
  std::string dir = "/tmp/sandfs-ptit-dev-XXXXXX";
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  // A tmpfs of our own: device nodes work on it whatever the options of the filesystem below.
  SYS(::mount("sandfs-ptit-dev", dir.c_str(), "tmpfs", 0, "mode=0755,size=1M"));
  const std::string dev = dir + "/fuse";
  struct stat real = stat_of("/dev/fuse");
  SYS(::mknod(dev.c_str(), S_IFCHR | 0666, real.st_rdev));
  SYS(::chmod(dev.c_str(), 0666));
  SYS(::mount(dev.c_str(), "/dev/fuse", nullptr, MS_BIND, nullptr));
  const std::string conf = dir + "/fuse.conf";
  write_file(conf, "user_allow_other\n", 0644);
  if (!exists("/etc/fuse.conf")) write_file("/etc/fuse.conf", "", 0644);
  SYS(::mount(conf.c_str(), "/etc/fuse.conf", nullptr, MS_BIND, nullptr));
  // The directory itself can go from the host's view; the tmpfs lives on in this namespace.
  SYS(::umount2(dir.c_str(), MNT_DETACH));
  ::rmdir(dir.c_str());
  done = true;
}

uid_t process_uid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) return static_cast<uid_t>(std::stoul(line.substr(4)));
  }
  return static_cast<uid_t>(-1);
}

}  // namespace

TEST_CASE("unprivileged server: guest root's chown / chmod 4755 / mknod live in the record only",
          "[pt][unprivileged]") {
  REQUIRE(::access("/usr/bin/fusermount3", X_OK) == 0);  // scripts/setup.sh installs fuse3
  enter_private_fuse_namespace();
  REQUIRE((stat_of("/dev/fuse").st_mode & 0777) == 0666);

  PassthroughMount m(PassthroughSpec{
      .launcher = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"},
      .server_user = std::make_pair(server_uid, server_gid)});
  REQUIRE(process_uid(m.fs().server_pid()) == server_uid);
  INFO(m.fs().log_tail());

  const std::string f = m.path("f");
  write_file(f, "made by guest root", 0644);
  SYS(::chown(f.c_str(), 1234, 5678));
  SYS(::chmod(f.c_str(), 04755));
  struct stat g = stat_of(f);
  CHECK(g.st_uid == 1234);
  CHECK(g.st_gid == 5678);
  CHECK(g.st_mode == (S_IFREG | 04755));
  struct stat h = lstat_of(m.host("f"));
  CHECK(h.st_uid == server_uid);
  CHECK(h.st_gid == server_gid);
  CHECK((h.st_mode & 07777) == 0600);
  const StatRecord r = m.record("f");
  CHECK(r.uid == 1234);
  CHECK(r.gid == 5678);
  CHECK(r.mode == (S_IFREG | 04755));

  SYS(::mknod(m.path("tty").c_str(), S_IFCHR | 0600, ::makedev(4, 1)));
  SYS(::chown(m.path("tty").c_str(), 0, 5));
  SYS(::chmod(m.path("tty").c_str(), 0620));
  g = lstat_of(m.path("tty"));
  CHECK(g.st_mode == (S_IFCHR | 0620));
  CHECK(g.st_rdev == ::makedev(4, 1));
  CHECK(g.st_uid == 0);
  CHECK(g.st_gid == 5);
  h = lstat_of(m.host("tty"));
  CHECK(S_ISREG(h.st_mode));
  CHECK((h.st_mode & 07777) == 0600);
  CHECK(h.st_uid == server_uid);

  SYS(::mkdir(m.path("root-only").c_str(), 0700));
  SYS(::mkdir(m.path("shared").c_str(), 0755));
  SYS(::chown(m.path("shared").c_str(), 0, 0));
  SYS(::chmod(m.path("shared").c_str(), 01777));
  CHECK(stat_of(m.path("shared")).st_mode == (S_IFDIR | 01777));
  h = lstat_of(m.host("shared"));
  CHECK(h.st_uid == server_uid);
  CHECK((h.st_mode & 07777) == 0700);
  write_file(m.path("root-only/secret"), "s", 0600);
  CHECK(lstat_of(m.host("root-only/secret")).st_uid == server_uid);

  // The guest's permission checks use the guest's owners: another guest user is kept out of
  // root-only (0700, owned by guest root) although the host directory belongs to the server.
  CHECK(as_nobody([&] {
          return rc([&] { return ::open(m.path("root-only/secret").c_str(), O_RDONLY); });
        }) == EACCES);
  CHECK(as_nobody([&] {
          const int fd = ::open(m.path("shared/by-nobody").c_str(), O_CREAT | O_WRONLY, 0644);
          if (fd < 0) return errno;
          ::close(fd);
          return 0;
        }) == 0);
  CHECK(stat_of(m.path("shared/by-nobody")).st_uid == nobody_uid);
}
