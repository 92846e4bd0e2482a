// Extended attributes through the kernel: user.* set/get/list/remove, flags, size queries and
// short buffers.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"
#include "sys_checks.hpp"

using namespace sandfs::it;

namespace {

std::string get(const std::string& path, const char* name) {
  const ssize_t size = SYS(::getxattr(path.c_str(), name, nullptr, 0));
  std::string v(static_cast<size_t>(size), '\0');
  const ssize_t n = SYS(::getxattr(path.c_str(), name, v.data(), v.size()));
  REQUIRE(n == size);
  return v;
}

std::set<std::string> names(const std::string& path) {
  const ssize_t size = SYS(::listxattr(path.c_str(), nullptr, 0));
  std::string buf(static_cast<size_t>(size), '\0');
  const ssize_t n = SYS(::listxattr(path.c_str(), buf.data(), buf.size()));
  REQUIRE(n == size);
  std::set<std::string> out;
  for (size_t pos = 0; pos < buf.size();) {
    const size_t end = buf.find('\0', pos);
    REQUIRE(end != std::string::npos);  // every name is NUL-terminated
    out.insert(buf.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

int set(const std::string& path, const char* name, std::string_view value, int flags = 0) {
  return ::setxattr(path.c_str(), name, value.data(), value.size(), flags);
}

}  // namespace

TEST_CASE("user xattrs: set / get / size query / list / replace / remove", "[xattr]") {
  MountedFs m;
  const std::string f = m.path("f");
  write_file(f, "x");
  CHECK(names(f).empty());

  SYS(set(f, "user.one", "first value"));
  SYS(set(f, "user.two", std::string("bin\0ary\xff", 8)));
  SYS(set(f, "user.empty", ""));
  CHECK(get(f, "user.one") == "first value");
  CHECK(get(f, "user.two") == std::string("bin\0ary\xff", 8));
  CHECK(get(f, "user.empty").empty());
  CHECK(SYS(::getxattr(f.c_str(), "user.one", nullptr, 0)) == 11);
  CHECK(names(f) == std::set<std::string>{"user.one", "user.two", "user.empty"});

  // Overwrite without flags; the new value may be shorter.
  SYS(set(f, "user.one", "1"));
  CHECK(get(f, "user.one") == "1");

  // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
  CHECK_ERRNO(EEXIST, set(f, "user.one", "again", XATTR_CREATE));
  CHECK(get(f, "user.one") == "1");
  CHECK_ERRNO(ENODATA, set(f, "user.none", "v", XATTR_REPLACE));
  CHECK_ERRNO(ENODATA, ::getxattr(f.c_str(), "user.none", nullptr, 0));
  SYS(set(f, "user.one", "replaced", XATTR_REPLACE));
  SYS(set(f, "user.three", "3", XATTR_CREATE));
  CHECK(get(f, "user.one") == "replaced");
  CHECK(get(f, "user.three") == "3");

  // Buffers too small for the value or the list.
  char small[4];
  CHECK_ERRNO(ERANGE, ::getxattr(f.c_str(), "user.one", small, sizeof small));
  CHECK_ERRNO(ERANGE, ::listxattr(f.c_str(), small, sizeof small));
  // Exactly large enough works.
  char exact[8];
  CHECK(SYS(::getxattr(f.c_str(), "user.one", exact, sizeof exact)) == 8);

  SYS(::removexattr(f.c_str(), "user.one"));
  CHECK_ERRNO(ENODATA, ::getxattr(f.c_str(), "user.one", nullptr, 0));
  CHECK_ERRNO(ENODATA, ::removexattr(f.c_str(), "user.one"));
  CHECK(names(f) == std::set<std::string>{"user.two", "user.empty", "user.three"});

  // Through an fd, on a directory, and the limits the VFS enforces.
  Fd fd = OPEN(f.c_str(), O_RDONLY);
  SYS(::fsetxattr(fd, "user.fd", "via fd", 6, 0));
  char buf[16];
  CHECK(SYS(::fgetxattr(fd, "user.fd", buf, sizeof buf)) == 6);
  CHECK(std::string(buf, 6) == "via fd");
  SYS(::fremovexattr(fd, "user.fd"));

  SYS(::mkdir(m.path("d").c_str(), 0755));
  SYS(set(m.path("d"), "user.dir", "on a directory"));
  CHECK(get(m.path("d"), "user.dir") == "on a directory");

  const std::string max_value(65536, 'v');
  if (passthrough_backend()) {
    // ext4 below keeps all of an inode's xattr values in one 4 KiB block: ENOSPC is its answer.
    CHECK_ERRNO(ENOSPC, set(f, "user.big", max_value));
  } else {
    SYS(set(f, "user.big", max_value));
    CHECK(get(f, "user.big") == max_value);
  }
  CHECK_ERRNO(E2BIG, set(f, "user.toobig", std::string(65537, 'v')));
  CHECK_ERRNO(ERANGE, set(f, ("user." + std::string(251, 'n')).c_str(), "v"));

  // The VFS refuses user.* on symlinks and special files; the link's target is unaffected.
  SYS(::symlink("f", m.path("l").c_str()));
  CHECK_ERRNO(EPERM, ::lsetxattr(m.path("l").c_str(), "user.x", "v", 1, 0));
  CHECK(get(m.path("l"), "user.two") == std::string("bin\0ary\xff", 8));  // follows the link

  // Xattrs belong to the inode: a hard link sees them, a rename keeps them, unlink frees them.
  SYS(::link(f.c_str(), m.path("hard").c_str()));
  CHECK(get(m.path("hard"), "user.three") == "3");
  SYS(::rename(f.c_str(), m.path("renamed").c_str()));
  CHECK(get(m.path("renamed"), "user.three") == "3");
}

TEST_CASE("trusted xattrs are stored for root", "[xattr]") {
  MountedFs m;
  const std::string f = m.path("f");
  write_file(f, "x");
  SYS(set(f, "trusted.overlay.opaque", "y"));
  CHECK(get(f, "trusted.overlay.opaque") == "y");
  CHECK(names(f).count("trusted.overlay.opaque") == 1);
}

TEST_CASE("a minimal POSIX ACL set through setxattr updates the mode bits / or is refused",
          "[xattr][acl]") {
  // Regression: `cp -a` left every copied file and directory with the restrictive mode it
  // created them with (0600/0700). cp sets the final permissions by writing a minimal
  // system.posix_acl_access ACL (libacl's acl_set_fd/acl_set_file) and only falls back to chmod
  // when that fails with EOPNOTSUPP. Without FUSE_POSIX_ACL the kernel passes the ACL to the
  // server as a plain setxattr and leaves applying it to the server, so the server must either
  // apply it to the mode (as every local filesystem does) or refuse it.
  MountedFs m;
  const std::string d = m.path("d");
  SYS(::mkdir(d.c_str(), 0700));
  // version 2; USER_OBJ rwx, GROUP_OBJ r-x, OTHER r-x: the ACL form of mode 0755.
  const unsigned char acl_0755[] = {2,    0, 0, 0,                          //
                                    0x01, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,  //
                                    0x04, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,  //
                                    0x20, 0, 5, 0, 0xff, 0xff, 0xff, 0xff};
  const int err = errno_of([&] {
    return ::setxattr(d.c_str(), "system.posix_acl_access", acl_0755, sizeof acl_0755, 0);
  });
  INFO("setxattr(system.posix_acl_access, 0755 form) -> " << errno_name(err));
  if (err == 0) {
    CHECK(stat_of(d).st_mode == (S_IFDIR | 0755));
  } else {
    CHECK(errno_name(err) == "EOPNOTSUPP");
    CHECK(stat_of(d).st_mode == (S_IFDIR | 0700));
  }

  write_file(m.path("f"), "x", 0600);
  const unsigned char acl_0644[] = {2,    0, 0, 0,                          //
                                    0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,  //
                                    0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,  //
                                    0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff};
  Fd fd = OPEN(m.path("f").c_str(), O_RDONLY);
  const int ferr = errno_of(
      [&] { return ::fsetxattr(fd, "system.posix_acl_access", acl_0644, sizeof acl_0644, 0); });
  INFO("fsetxattr(system.posix_acl_access, 0644 form) -> " << errno_name(ferr));
  if (ferr == 0) {
    CHECK(fstat_of(fd).st_mode == (S_IFREG | 0644));
  } else {
    CHECK(errno_name(ferr) == "EOPNOTSUPP");
  }
}
