// The server never needs root: ownership lives in the records. When the tests run as root, the
// scenario runs again in a child process as nobody (65534), exec'ed from this binary.
#include <grp.h>
#include <sys/wait.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

namespace {

void guest_root_scenario() {
  TestFs t;
  REQUIRE(t.ctx.uid == 0);  // guest root, whatever the server is
  Entry f = t.file_with(root, "f", "data");
  // chown to anyone, chmod with setuid, devices: all in the record.
  Result<AttrReply> a = t.chown(f.ino, 0, 0);
  REQUIRE(a.ok());
  a = t.chown(f.ino, 4321, 8765);
  REQUIRE(a.ok());
  CHECK(a->attr.uid == 4321);
  a = t.chmod(f.ino, 04755);
  REQUIRE(a.ok());
  CHECK(a->attr.mode == (S_IFREG | 04755));
  Result<Entry> dev = t.mknod(root, "null", S_IFCHR | 0666, 0x0103);
  REQUIRE(dev.ok());
  CHECK((dev->attr.mode & S_IFMT) == S_IFCHR);
  CHECK(dev->attr.rdev == 0x0103);
  Result<Entry> blk = t.mknod(root, "sda", S_IFBLK | 0660, 0x0800);
  REQUIRE(blk.ok());
  Entry d = t.mkdir_ok(root, "d");
  REQUIRE(t.chown(d.ino, 1, 1).ok());
  // The host saw none of it: files belong to the server's user, private modes.
  CHECK(t.host_stat("f").st_uid == ::geteuid());
  CHECK((t.host_stat("f").st_mode & 07777) == 0600);
  CHECK(S_ISREG(t.host_stat("null").st_mode));
  CHECK((t.host_stat("d").st_mode & 07777) == 0700);
  CHECK(t.host_record("f") == record_bytes(4321, 8765, S_IFREG | 04755));
  // A write by a non-root guest clears the record's setuid.
  HandleId fh = t.open_ok(f.ino, O_WRONLY);
  CHECK(*t.write(f.ino, fh, 0, "D", true) == 1);
  CHECK(t.release(f.ino, fh).ok());
  CHECK(t.attr(f.ino).mode == (S_IFREG | 0755));
  // The host's own setuid on a record-less file is cleared by the host kernel on our write.
  t.host_write("hostsuid", "x", 0755);
  REQUIRE(::chmod(t.host("hostsuid").c_str(), 04755) == 0);
  Entry hs = t.lookup_ok(root, "hostsuid");
  HandleId hfh = t.open_ok(hs.ino, O_WRONLY);
  CHECK(*t.write(hs.ino, hfh, 0, "y", true) == 1);
  CHECK(t.release(hs.ino, hfh).ok());
  CHECK((t.host_stat("hostsuid").st_mode & S_ISUID) == 0);

  // trusted.* needs privileges the server does not have: refused at start-up, with the reason.
  PassthroughConfig c;
  c.root = t.dir.path();
  c.stat_xattr = "trusted.sandfs.stat";
  MakeResult r = make_passthrough(c);
  CHECK(!r);
  CHECK(r.err == EPERM);
  CHECK(r.error.find("cannot store ownership records") != std::string::npos);
}

}  // namespace

TEST_CASE("passthrough: unprivileged scenario body", "[.as_nobody]") {
  REQUIRE(::geteuid() != 0);
  guest_root_scenario();
}

TEST_CASE("passthrough: guest root can chown chmod and mknod on an unprivileged server",
          "[passthrough][unprivileged]") {
  if (::geteuid() != 0) {
    guest_root_scenario();
    return;
  }
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    const gid_t nobody = 65534;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
        ::setresuid(nobody, nobody, nobody) != 0) {
      ::_exit(90);
    }
    char arg0[] = "unit_passthrough";
    char arg1[] = "[.as_nobody]";
    char* argv[] = {arg0, arg1, nullptr};
    char env0[] = "TMPDIR=/tmp";
    char* envp[] = {env0, nullptr};
    ::execve("/proc/self/exe", argv, envp);
    ::_exit(91);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
