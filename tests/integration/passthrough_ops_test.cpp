// PassthroughFs through the kernel: every operation, its errnos, and what it does to the host
// directory (the same bytes, names and links on the host; ownership in the record, not the host
// inode). The POSIX details of each call are also covered by the MemFs suite, which CTest runs
// against PassthroughFs too (posix_on_passthrough/).
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>

#include <catch2/catch.hpp>

#include "passthrough_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

TEST_CASE("files: create / write / read / append / truncate reach the host file", "[pt][files]") {
  PassthroughMount m;
  const std::string f = m.path("f");

  Fd fd(SYS(::open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640)));
  CHECK(fstat_of(fd).st_mode == (S_IFREG | 0640));
  const std::string data = pattern(7, 0, 200'000);
  pwrite_all(fd, data, 0);
  CHECK(pread_all(fd, 300'000, 0) == data);
  REQUIRE(fd.close() == 0);
  CHECK(read_file(m.host("f")) == data);
  CHECK(stat_of(m.host("f")).st_size == 200'000);

  // Host-side writes are seen through the mount (cache auto: on the next open).
  write_file(m.host("f"), "from the host");
  CHECK(read_file(f) == "from the host");

  Fd app = OPEN(f.c_str(), O_WRONLY | O_APPEND);
  CHECK(SYS(::write(app, "+1", 2)) == 2);
  CHECK(SYS(::pwrite(app, "+2", 2, 0)) == 2);  // O_APPEND: pwrite appends too (Linux)
  app.reset();
  CHECK(read_file(m.host("f")) == "from the host+1+2");

  SYS(::truncate(f.c_str(), 4));
  CHECK(read_file(m.host("f")) == "from");
  SYS(::truncate(f.c_str(), 10000));
  CHECK(stat_of(m.host("f")).st_size == 10000);
  CHECK(read_file(f) == "from" + std::string(9996, '\0'));
  Fd t = OPEN(f.c_str(), O_RDWR | O_TRUNC);
  CHECK(fstat_of(t).st_size == 0);
  SYS(::ftruncate(t, 3));
  t.reset();
  CHECK(stat_of(m.host("f")).st_size == 3);

  CHECK_ERRNO(EEXIST, ::open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600));
  CHECK_ERRNO(ENOENT, ::open(m.path("missing").c_str(), O_RDONLY));
  CHECK_ERRNO(ENOENT, ::open(m.path("nodir/x").c_str(), O_CREAT | O_RDWR, 0644));
  CHECK_ERRNO(ENOTDIR, ::open(m.path("f/x").c_str(), O_CREAT | O_RDWR, 0644));
  CHECK_ERRNO(ENOTDIR, ::open(f.c_str(), O_RDONLY | O_DIRECTORY));
  SYS(::mkdir(m.path("d").c_str(), 0755));
  CHECK_ERRNO(EISDIR, ::open(m.path("d").c_str(), O_RDWR));
  CHECK_ERRNO(EISDIR, ::truncate(m.path("d").c_str(), 0));
  CHECK_ERRNO(ENAMETOOLONG, ::open(m.path(std::string(256, 'n')).c_str(), O_CREAT | O_RDWR, 0644));
  Fd longest = OPEN(m.path(std::string(255, 'n')).c_str(), O_CREAT | O_RDWR, 0644);
  CHECK(exists(m.host(std::string(255, 'n'))));
  CHECK_ERRNO(EINVAL, ::truncate(f.c_str(), -1));
  CHECK_ERRNO(EFBIG, ::truncate(f.c_str(), std::numeric_limits<off_t>::max()));
}

TEST_CASE("files: fallocate / SEEK_DATA and SEEK_HOLE / copy_file_range / fsync", "[pt][files]") {
  PassthroughMount m;
  Fd fd = OPEN(m.path("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  pwrite_all(fd, "data", 1 << 20);
  // ext4 below: the hole and the data are the host's, reported through FUSE_LSEEK.
  CHECK(SYS(::lseek(fd, 0, SEEK_DATA)) == 1 << 20);
  CHECK(SYS(::lseek(fd, 0, SEEK_HOLE)) == 0);
  CHECK_ERRNO(ENXIO, ::lseek(fd, (1 << 20) + 4, SEEK_DATA));

  SYS(::fallocate(fd, 0, 0, 65536));
  CHECK(fstat_of(fd).st_size == (1 << 20) + 4);
  SYS(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 << 20, 65536));
  CHECK(fstat_of(fd).st_size == (1 << 20) + 4);
  CHECK(stat_of(m.host("sparse")).st_blocks >= 2 * 65536 / 512);
  SYS(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 4096));
  CHECK(pread_all(fd, 4, 1 << 20) == std::string(4, '\0'));
  SYS(::fallocate(fd, 0, 3 << 20, 4096));
  CHECK(stat_of(m.host("sparse")).st_size == (3 << 20) + 4096);
  CHECK_ERRNO(EINVAL, ::fallocate(fd, 0, 0, 0));
  Fd ro = OPEN(m.path("sparse").c_str(), O_RDONLY);
  CHECK_ERRNO(EBADF, ::fallocate(ro, 0, 0, 4096));

  Fd src = OPEN(m.path("src").c_str(), O_CREAT | O_RDWR, 0644);
  pwrite_all(src, "hello, copy_file_range", 0);
  Fd dst = OPEN(m.path("dst").c_str(), O_CREAT | O_RDWR, 0644);
  loff_t in = 7, out = 2;
  CHECK(SYS(::copy_file_range(src, &in, dst, &out, 15, 0)) == 15);
  CHECK(read_file(m.host("dst")) == std::string(2, '\0') + "copy_file_range");
  CHECK_ERRNO(EBADF, ::copy_file_range(src, nullptr, ro, nullptr, 4, 0));

  SYS(::fsync(dst));
  SYS(::fdatasync(dst));
  SYS(::syncfs(dst));
  Fd dir = OPEN(m.dir().c_str(), O_RDONLY | O_DIRECTORY);
  SYS(::fsync(dir));
}

TEST_CASE("statfs and access through the mount", "[pt][files]") {
  PassthroughMount m;
  struct statvfs guest {
  }, host{};
  SYS(::statvfs(m.dir().c_str(), &guest));
  SYS(::statvfs(m.host().c_str(), &host));
  // Without a quota: the host filesystem's numbers (free space moves with the machine).
  CHECK(guest.f_blocks * guest.f_frsize == host.f_blocks * host.f_frsize);
  CHECK(guest.f_namemax == 255);
  CHECK(guest.f_bavail > 0);

  write_file(m.path("r"), "x", 0444);
  CHECK(::access(m.path("r").c_str(), R_OK) == 0);
  CHECK(::access(m.path("r").c_str(), W_OK) == 0);  // root
  CHECK_ERRNO(EACCES, ::access(m.path("r").c_str(), X_OK));
  SYS(::chmod(m.path("r").c_str(), 0755));
  CHECK(::access(m.path("r").c_str(), X_OK) == 0);
  CHECK_ERRNO(ENOENT, ::access(m.path("nope").c_str(), F_OK));
}

TEST_CASE("an open file stays usable after unlink / the host name is gone at once",
          "[pt][files][unlink]") {
  PassthroughMount m;
  const std::string f = m.path("victim");
  write_file(f, "before");
  Fd fd = OPEN(f.c_str(), O_RDWR);
  Fd ro = OPEN(f.c_str(), O_RDONLY);
  SYS(::unlink(f.c_str()));
  CHECK_FALSE(exists(f));
  CHECK_FALSE(exists(m.host("victim")));
  CHECK(list_dir(m.host()).empty());  // no silly-rename leftovers on the host

  CHECK(pread_all(fd, 100, 0) == "before");
  pwrite_all(fd, "after!", 0);
  CHECK(pread_all(ro, 100, 0) == "after!");
  SYS(::ftruncate(fd, 3));
  CHECK(fstat_of(ro).st_size == 3);
  CHECK(fstat_of(fd).st_nlink == 0);
  // Metadata of the unlinked inode still changes (the record lives on the open host inode).
  SYS(::fchmod(fd, 0604));
  CHECK((fstat_of(fd).st_mode & 07777) == 0604);
  SYS(::fchown(fd, 1234, 5678));
  CHECK(fstat_of(ro).st_uid == 1234);
  SYS(::fsync(fd));
  REQUIRE(fd.close() == 0);
  CHECK(pread_all(ro, 100, 0) == "aft");
  ro.reset();

  // The same name can be made again and is a new file.
  write_file(f, "new");
  CHECK(read_file(m.host("victim")) == "new");
  CHECK((stat_of(f).st_mode & 07777) == 0644);
}

TEST_CASE("namespace: mkdir / rmdir / unlink / rename / renameat2 / link on the host",
          "[pt][namespace]") {
  PassthroughMount m;
  SYS(::mkdir(m.path("d").c_str(), 0750));
  CHECK(S_ISDIR(lstat_of(m.host("d")).st_mode));
  CHECK(stat_of(m.path("d")).st_mode == (S_IFDIR | 0750));
  CHECK_ERRNO(EEXIST, ::mkdir(m.path("d").c_str(), 0755));
  CHECK_ERRNO(ENOENT, ::mkdir(m.path("no/such").c_str(), 0755));
  write_file(m.path("d/f"), "in d");
  CHECK_ERRNO(ENOTDIR, ::mkdir(m.path("d/f/sub").c_str(), 0755));
  CHECK_ERRNO(ENOTEMPTY, ::rmdir(m.path("d").c_str()));
  CHECK_ERRNO(ENOTDIR, ::rmdir(m.path("d/f").c_str()));
  CHECK_ERRNO(EISDIR, ::unlink(m.path("d").c_str()));
  CHECK_ERRNO(ENOENT, ::unlink(m.path("d/missing").c_str()));
  CHECK_ERRNO(ENOENT, ::rmdir(m.path("missing").c_str()));

  // rename within and across directories, over a file, and its errors.
  SYS(::mkdir(m.path("e").c_str(), 0755));
  SYS(::rename(m.path("d/f").c_str(), m.path("e/g").c_str()));
  CHECK_FALSE(exists(m.host("d/f")));
  CHECK(read_file(m.host("e/g")) == "in d");
  write_file(m.path("e/h"), "h");
  SYS(::rename(m.path("e/h").c_str(), m.path("e/g").c_str()));
  CHECK(read_file(m.host("e/g")) == "h");
  CHECK_FALSE(exists(m.host("e/h")));
  SYS(::mkdir(m.path("e/sub").c_str(), 0755));
  CHECK_ERRNO(EISDIR, ::rename(m.path("e/g").c_str(), m.path("e/sub").c_str()));
  CHECK_ERRNO(ENOTDIR, ::rename(m.path("e/sub").c_str(), m.path("e/g").c_str()));
  CHECK_ERRNO(ENOTEMPTY, ::rename(m.path("d").c_str(), m.path("e").c_str()));
  CHECK_ERRNO(EINVAL, ::rename(m.path("e").c_str(), m.path("e/sub/inside").c_str()));
  CHECK_ERRNO(ENOENT, ::rename(m.path("nope").c_str(), m.path("e/x").c_str()));
  SYS(::rename(m.path("e/sub").c_str(), m.path("d/moved").c_str()));
  CHECK(S_ISDIR(lstat_of(m.host("d/moved")).st_mode));

  // renameat2: NOREPLACE and EXCHANGE are the host's.
  write_file(m.path("a"), "A");
  write_file(m.path("b"), "B");
  CHECK_ERRNO(EEXIST, ::renameat2(AT_FDCWD, m.path("a").c_str(), AT_FDCWD, m.path("b").c_str(),
                                  RENAME_NOREPLACE));
  SYS(::renameat2(AT_FDCWD, m.path("a").c_str(), AT_FDCWD, m.path("b").c_str(), RENAME_EXCHANGE));
  CHECK(read_file(m.host("a")) == "B");
  CHECK(read_file(m.host("b")) == "A");
  CHECK(read_file(m.path("a")) == "B");
  CHECK_ERRNO(ENOENT, ::renameat2(AT_FDCWD, m.path("a").c_str(), AT_FDCWD,
                                  m.path("nothing").c_str(), RENAME_EXCHANGE));

  // Hard links: one host inode, one guest inode, link counts on both sides.
  SYS(::link(m.path("a").c_str(), m.path("d/a2").c_str()));
  CHECK(lstat_of(m.host("a")).st_ino == lstat_of(m.host("d/a2")).st_ino);
  CHECK(stat_of(m.path("a")).st_ino == stat_of(m.path("d/a2")).st_ino);
  CHECK(stat_of(m.path("a")).st_nlink == 2);
  CHECK_ERRNO(EEXIST, ::link(m.path("a").c_str(), m.path("b").c_str()));
  CHECK_ERRNO(EPERM, ::link(m.path("d").c_str(), m.path("dlink").c_str()));
  SYS(::chmod(m.path("d/a2").c_str(), 0611));
  CHECK((stat_of(m.path("a")).st_mode & 07777) == 0611);  // one record for both names
  SYS(::unlink(m.path("a").c_str()));
  CHECK(stat_of(m.path("d/a2")).st_nlink == 1);
  CHECK(read_file(m.path("d/a2")) == "B");

  SYS(::unlink(m.path("d/a2").c_str()));
  SYS(::rmdir(m.path("d/moved").c_str()));
  SYS(::rmdir(m.path("d").c_str()));
  CHECK_FALSE(exists(m.host("d")));
}

TEST_CASE("symlinks: the target text round-trips / readlink of a non-link is EINVAL",
          "[pt][namespace][symlink]") {
  PassthroughMount m;
  const std::string target = "../some where/" + std::string(200, 't');
  SYS(::symlink(target.c_str(), m.path("l").c_str()));
  CHECK(S_ISLNK(lstat_of(m.path("l")).st_mode));
  CHECK(lstat_of(m.path("l")).st_size == static_cast<off_t>(target.size()));
  std::string buf(4096, '\0');
  CHECK(SYS(::readlink(m.path("l").c_str(), buf.data(), buf.size())) ==
        static_cast<ssize_t>(target.size()));
  CHECK(buf.substr(0, target.size()) == target);
  CHECK_ERRNO(EEXIST, ::symlink("x", m.path("l").c_str()));
  write_file(m.path("plain"), "plain");
  CHECK_ERRNO(EINVAL, ::readlink(m.path("plain").c_str(), buf.data(), buf.size()));
  struct stat st {};
  CHECK_ERRNO(ENOENT, ::stat(m.path("l").c_str(), &st));  // resolved by the guest: nothing there

  // A link to a file inside the mount is followed by the guest kernel.
  SYS(::symlink("plain", m.path("to-plain").c_str()));
  CHECK(read_file(m.path("to-plain")) == "plain");
  // The longest target the kernel accepts.
  const std::string longest(4095, 'x');
  SYS(::symlink(longest.c_str(), m.path("long").c_str()));
  CHECK(lstat_of(m.path("long")).st_size == 4095);
  SYS(::unlink(m.path("l").c_str()));
  CHECK_FALSE(exists(m.host("l")));
}

TEST_CASE("mknod: fifos / sockets / char and block devices keep type and st_rdev",
          "[pt][namespace][special]") {
  PassthroughMount m;
  SYS(::mknod(m.path("fifo").c_str(), S_IFIFO | 0640, 0));
  SYS(::mknod(m.path("chr").c_str(), S_IFCHR | 0620, ::makedev(1, 3)));
  SYS(::mknod(m.path("blk").c_str(), S_IFBLK | 0660, ::makedev(259, 70000)));
  SYS(::mknod(m.path("sock").c_str(), S_IFSOCK | 0755, 0));
  SYS(::mknod(m.path("reg").c_str(), S_IFREG | 0600, 0));
  CHECK(lstat_of(m.path("fifo")).st_mode == (S_IFIFO | 0640));
  CHECK(lstat_of(m.path("chr")).st_mode == (S_IFCHR | 0600));  // umask 022
  CHECK(lstat_of(m.path("chr")).st_rdev == ::makedev(1, 3));
  CHECK(lstat_of(m.path("blk")).st_mode == (S_IFBLK | 0640));
  CHECK(lstat_of(m.path("blk")).st_rdev == ::makedev(259, 70000));
  CHECK(lstat_of(m.path("sock")).st_mode == (S_IFSOCK | 0755));
  CHECK(lstat_of(m.path("reg")).st_mode == (S_IFREG | 0600));
  CHECK_ERRNO(EEXIST, ::mknod(m.path("fifo").c_str(), S_IFIFO | 0640, 0));

  // The guest kernel serves the special files itself: a fifo carries data between two opens.
  Fd r(SYS(::open(m.path("fifo").c_str(), O_RDONLY | O_NONBLOCK)));
  Fd w(SYS(::open(m.path("fifo").c_str(), O_WRONLY | O_NONBLOCK)));
  CHECK(SYS(::write(w, "through", 7)) == 7);
  char buf[16] = {};
  CHECK(SYS(::read(r, buf, sizeof buf)) == 7);
  CHECK(std::string(buf, 7) == "through");
  // The mount is nodev: the guest kernel itself refuses to open the device node.
  CHECK_ERRNO(EACCES, ::open(m.path("chr").c_str(), O_WRONLY));
}

TEST_CASE("xattrs: set / get / size query / list / replace / remove are the host's",
          "[pt][xattr]") {
  PassthroughMount m;
  const std::string f = m.path("f");
  write_file(f, "x");
  SYS(::setxattr(f.c_str(), "user.color", "blue", 4, 0));
  CHECK(host_xattr(m.host("f"), "user.color") == "blue");
  char buf[256] = {};
  CHECK(SYS(::getxattr(f.c_str(), "user.color", nullptr, 0)) == 4);
  CHECK(SYS(::getxattr(f.c_str(), "user.color", buf, sizeof buf)) == 4);
  CHECK(std::string(buf, 4) == "blue");
  CHECK_ERRNO(ERANGE, ::getxattr(f.c_str(), "user.color", buf, 2));
  CHECK_ERRNO(ENODATA, ::getxattr(f.c_str(), "user.none", buf, sizeof buf));
  CHECK_ERRNO(EEXIST, ::setxattr(f.c_str(), "user.color", "red", 3, XATTR_CREATE));
  CHECK_ERRNO(ENODATA, ::setxattr(f.c_str(), "user.none", "red", 3, XATTR_REPLACE));
  SYS(::setxattr(f.c_str(), "user.color", "red", 3, XATTR_REPLACE));
  CHECK(host_xattr(m.host("f"), "user.color") == "red");

  // The list is the host's, without the ownership record.
  SYS(::chmod(f.c_str(), 0640));  // makes sure a record exists
  CHECK(m.has_record("f"));
  const ssize_t size = SYS(::listxattr(f.c_str(), nullptr, 0));
  std::string names(static_cast<size_t>(size), '\0');
  CHECK(SYS(::listxattr(f.c_str(), names.data(), names.size())) == size);
  CHECK(names == std::string("user.color\0", 11));

  SYS(::removexattr(f.c_str(), "user.color"));
  CHECK_FALSE(host_xattr(m.host("f"), "user.color"));
  CHECK_ERRNO(ENODATA, ::removexattr(f.c_str(), "user.color"));
  SYS(::setxattr(m.dir().c_str(), "user.on-dir", "d", 1, 0));
  CHECK(host_xattr(m.host(), "user.on-dir") == "d");
}

TEST_CASE("the ownership record cannot be read / written or removed through the mount",
          "[pt][xattr][record]") {
  PassthroughMount m;
  const std::string f = m.path("f");
  write_file(f, "x");
  REQUIRE(m.has_record("f"));
  const std::string before = *host_xattr(m.host("f"), default_record_name());
  const std::string name = default_record_name();
  char buf[64];
  CHECK_ERRNO(EACCES, ::getxattr(f.c_str(), name.c_str(), buf, sizeof buf));
  CHECK_ERRNO(EACCES, ::getxattr(f.c_str(), name.c_str(), nullptr, 0));
  const std::string forged = encode_record({.uid = 0, .gid = 0, .mode = S_IFREG | 04777});
  CHECK_ERRNO(EACCES, ::setxattr(f.c_str(), name.c_str(), forged.data(), forged.size(), 0));
  CHECK_ERRNO(EACCES, ::removexattr(f.c_str(), name.c_str()));
  CHECK(*host_xattr(m.host("f"), name) == before);
  CHECK((stat_of(f).st_mode & 07777) == 0644);
  // Not in the list, and the size query does not count it either.
  CHECK(SYS(::listxattr(f.c_str(), nullptr, 0)) == 0);
}

TEST_CASE("locks: flock excludes another process", "[pt][files][locks]") {
  PassthroughMount m;
  write_file(m.path("lock"), "l");
  Fd a = OPEN(m.path("lock").c_str(), O_RDWR);
  SYS(::flock(a, LOCK_EX));
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const int fd = ::open(m.path("lock").c_str(), O_RDWR);
    const int r = ::flock(fd, LOCK_EX | LOCK_NB);
    ::_exit(r == -1 && errno == EWOULDBLOCK ? 0 : 1);
  }
  int status = 0;
  SYS(::waitpid(child, &status, 0));
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  SYS(::flock(a, LOCK_UN));
}
