// Another user on the mount (uid/gid 65534, no groups, no capabilities). The mount has allow_other,
// so that user reaches the filesystem at all, and default_permissions, so the kernel decides from
// the mode bits the server reports. Also: setuid/setgid cleared when a non-owner writes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

TEST_CASE("another user: allowed where the mode bits allow / EACCES/EPERM where they do not",
          "[permissions]") {
  MountedFs m;
  write_file(m.path("public"), "everyone may read", 0644);
  write_file(m.path("private"), "root only", 0600);
  SYS(::mkdir(m.path("closed").c_str(), 0700));
  write_file(m.path("closed/inner"), "x", 0644);
  SYS(::mkdir(m.path("rootdir").c_str(), 0755));
  write_file(m.path("rootdir/file"), "x", 0666);
  SYS(::mkdir(m.path("open").c_str(), 0777));
  SYS(::mkdir(m.path("sticky").c_str(), 01777));
  write_file(m.path("sticky/roots"), "x", 0666);
  // The umask (022) trimmed the modes above; set the ones that matter exactly.
  SYS(::chmod(m.path("rootdir/file").c_str(), 0666));
  SYS(::chmod(m.path("open").c_str(), 0777));
  SYS(::chmod(m.path("sticky").c_str(), 01777));
  SYS(::chmod(m.path("sticky/roots").c_str(), 0666));
  const std::string dir = m.dir();

  // allow_other: the mount is reachable at all, and world-readable things are readable.
  CHECK(as_nobody([&] {
          char buf[64];
          const int fd = ::open((dir + "/public").c_str(), O_RDONLY);
          if (fd < 0) return errno;
          const ssize_t n = ::read(fd, buf, sizeof buf);
          ::close(fd);
          return n == 17 ? 0 : 200;
        }) == 0);
  CHECK(as_nobody([&] { return rc([&] { return ::access(dir.c_str(), R_OK | X_OK); }); }) == 0);

  // Reading or writing against the mode bits.
  auto open_as_nobody = [&](const std::string& rel, int flags) {
    return as_nobody([&] {
      const int fd = ::open((dir + "/" + rel).c_str(), flags, 0644);
      if (fd < 0) return errno;
      ::close(fd);
      return 0;
    });
  };
  CHECK(errno_name(open_as_nobody("private", O_RDONLY)) == "EACCES");
  CHECK(errno_name(open_as_nobody("public", O_WRONLY)) == "EACCES");
  CHECK(errno_name(open_as_nobody("public", O_RDWR)) == "EACCES");
  CHECK(errno_name(open_as_nobody("rootdir/file", O_WRONLY)) == "0");  // 0666
  CHECK(as_nobody([&] { return rc([&] { return ::truncate((dir + "/public").c_str(), 0); }); }) ==
        EACCES);
  CHECK(as_nobody([&] { return rc([&] { return ::access((dir + "/public").c_str(), W_OK); }); }) ==
        EACCES);

  // Search permission on a directory.
  struct stat st {};
  CHECK(as_nobody([&] {
          return rc([&] { return ::stat((dir + "/closed/inner").c_str(), &st); });
        }) == EACCES);
  CHECK(errno_name(open_as_nobody("closed/inner", O_RDONLY)) == "EACCES");

  // Creating and removing needs write permission on the directory.
  CHECK(errno_name(open_as_nobody("rootdir/new", O_CREAT | O_WRONLY)) == "EACCES");
  CHECK(as_nobody([&] {
          return rc([&] { return ::mkdir((dir + "/rootdir/d").c_str(), 0755); });
        }) == EACCES);
  CHECK(as_nobody([&] { return rc([&] { return ::unlink((dir + "/rootdir/file").c_str()); }); }) ==
        EACCES);
  CHECK(as_nobody([&] {
          return rc([&] {
            return ::rename((dir + "/rootdir/file").c_str(), (dir + "/open/stolen").c_str());
          });
        }) == EACCES);
  CHECK(exists(m.path("rootdir/file")));
  CHECK_FALSE(exists(m.path("rootdir/new")));

  // In a world-writable directory the new file belongs to the creator.
  CHECK(errno_name(open_as_nobody("open/mine", O_CREAT | O_WRONLY)) == "0");
  st = stat_of(m.path("open/mine"));
  CHECK(st.st_uid == nobody_uid);
  CHECK(st.st_gid == nobody_gid);
  CHECK(st.st_mode == (S_IFREG | 0644));
  CHECK(as_nobody([&] { return rc([&] { return ::mkdir((dir + "/open/sub").c_str(), 0700); }); }) ==
        0);
  CHECK(stat_of(m.path("open/sub")).st_uid == nobody_uid);

  // Sticky directory: others' files cannot be removed or renamed away; one's own can.
  CHECK(errno_name(open_as_nobody("sticky/own", O_CREAT | O_WRONLY)) == "0");
  CHECK(as_nobody([&] { return rc([&] { return ::unlink((dir + "/sticky/roots").c_str()); }); }) ==
        EPERM);
  CHECK(as_nobody([&] { return rc([&] { return ::unlink((dir + "/sticky/own").c_str()); }); }) ==
        0);
  CHECK(exists(m.path("sticky/roots")));

  // Only the owner (or root) changes modes, owners and explicit times; only root gives away.
  CHECK(as_nobody([&] { return rc([&] { return ::chmod((dir + "/public").c_str(), 0777); }); }) ==
        EPERM);
  CHECK(as_nobody([&] {
          return rc([&] { return ::chown((dir + "/open/mine").c_str(), 0, nobody_gid); });
        }) == EPERM);
  CHECK(as_nobody([&] {
          const timespec t[2] = {{1, 0}, {1, 0}};
          return rc([&] { return ::utimensat(AT_FDCWD, (dir + "/rootdir/file").c_str(), t, 0); });
        }) == EPERM);
  // ...but anyone with write permission may set both times to now.
  CHECK(as_nobody([&] {
          return rc(
              [&] { return ::utimensat(AT_FDCWD, (dir + "/rootdir/file").c_str(), nullptr, 0); });
        }) == 0);
  CHECK(as_nobody(
            [&] { return rc([&] { return ::chmod((dir + "/open/mine").c_str(), 0600); }); }) == 0);
  CHECK(stat_of(m.path("open/mine")).st_mode == (S_IFREG | 0600));
  CHECK(stat_of(m.path("public")).st_mode == (S_IFREG | 0644));

  // user.* xattrs need write permission on the file.
  CHECK(as_nobody([&] {
          return rc([&] { return ::setxattr((dir + "/public").c_str(), "user.x", "v", 1, 0); });
        }) == EACCES);
  CHECK(as_nobody([&] {
          return rc([&] { return ::setxattr((dir + "/open/mine").c_str(), "user.x", "v", 1, 0); });
        }) == 0);
  // trusted.* needs CAP_SYS_ADMIN (the VFS checks, before the server sees the request).
  SYS(::setxattr(m.path("public").c_str(), "trusted.t", "v", 1, 0));
  CHECK(as_nobody([&] {
          return rc(
              [&] { return ::setxattr((dir + "/open/mine").c_str(), "trusted.t", "v", 1, 0); });
        }) == EPERM);
  CHECK(as_nobody([&] {
          char buf[8];
          return rc(
              [&] { return ::getxattr((dir + "/public").c_str(), "trusted.t", buf, sizeof buf); });
        }) == ENODATA);
}

TEST_CASE("a write by another user clears setuid / and setgid on a group-executable file",
          "[permissions]") {
  MountedFs m;
  write_file(m.path("suid"), "", 0644);
  SYS(::chmod(m.path("suid").c_str(), 04777));
  write_file(m.path("sgid"), "", 0644);
  SYS(::chmod(m.path("sgid").c_str(), 02777));
  const std::string dir = m.dir();

  auto write_as_nobody = [&](const std::string& rel) {
    return as_nobody([&] {
      const int fd = ::open((dir + "/" + rel).c_str(), O_WRONLY);
      if (fd < 0) return errno;
      const ssize_t n = ::write(fd, "w", 1);
      const int e = n < 0 ? errno : 0;
      ::close(fd);
      return e;
    });
  };
  CHECK(write_as_nobody("suid") == 0);
  CHECK(stat_of(m.path("suid")).st_mode == (S_IFREG | 0777));
  CHECK(write_as_nobody("sgid") == 0);
  CHECK(stat_of(m.path("sgid")).st_mode == (S_IFREG | 0777));
  CHECK(read_file(m.path("suid")) == "w");

  // Truncation by another user clears it too.
  SYS(::chmod(m.path("suid").c_str(), 04777));
  CHECK(as_nobody([&] { return rc([&] { return ::truncate((dir + "/suid").c_str(), 0); }); }) == 0);
  CHECK(stat_of(m.path("suid")).st_mode == (S_IFREG | 0777));

  // So does open(O_TRUNC) by another user.
  SYS(::chmod(m.path("suid").c_str(), 04777));
  CHECK(as_nobody([&] {
          const int fd = ::open((dir + "/suid").c_str(), O_WRONLY | O_TRUNC);
          if (fd < 0) return errno;
          ::close(fd);
          return 0;
        }) == 0);
  CHECK(stat_of(m.path("suid")).st_mode == (S_IFREG | 0777));

  // Root (CAP_FSETID) writing keeps the bits.
  SYS(::chmod(m.path("suid").c_str(), 04777));
  {
    Fd fd = OPEN(m.path("suid").c_str(), O_WRONLY);
    pwrite_all(fd, "root", 0);
  }
  CHECK(stat_of(m.path("suid")).st_mode == (S_IFREG | 04777));
}
