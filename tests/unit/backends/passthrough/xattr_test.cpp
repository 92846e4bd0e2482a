// Extended attributes passed through to the host.
#include <sys/xattr.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: xattrs round-trip to the host", "[passthrough][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.color", "blue").ok());
  CHECK(t.host_xattr("f", "user.color") == "blue");
  Result<XattrReply> size = t.getxattr(f.ino, "user.color", 0);
  REQUIRE(size.ok());
  CHECK(size->size == 4);
  CHECK(size->data.empty());
  Result<XattrReply> value = t.getxattr(f.ino, "user.color", 100);
  REQUIRE(value.ok());
  CHECK(std::string(value->data.data(), value->data.size()) == "blue");
  CHECK(err(t.getxattr(f.ino, "user.color", 2)) == ERANGE);
  CHECK(err(t.getxattr(f.ino, "user.none", 100)) == ENODATA);
  CHECK(err(t.setxattr(f.ino, "user.color", "red", XATTR_CREATE)) == EEXIST);
  CHECK(err(t.setxattr(f.ino, "user.other", "red", XATTR_REPLACE)) == ENODATA);
  CHECK(err(t.setxattr(f.ino, "user.color", "red", 0x40)) == EINVAL);
  REQUIRE(t.setxattr(f.ino, "user.color", "red", XATTR_REPLACE).ok());
  REQUIRE(t.setxattr(f.ino, "user.empty", "").ok());
  Result<XattrReply> list = t.listxattr(f.ino, 1000);
  REQUIRE(list.ok());
  const std::string names(list->data.data(), list->data.size());
  CHECK(names.find(std::string("user.color\0", 11)) != std::string::npos);
  CHECK(names.find(std::string("user.empty\0", 11)) != std::string::npos);
  CHECK(names.find("sandfs") == std::string::npos);
  REQUIRE(t.removexattr(f.ino, "user.color").ok());
  CHECK(err(t.removexattr(f.ino, "user.color")) == ENODATA);
  CHECK(!t.host_xattr("f", "user.color"));
  // On directories and the root too.
  Entry d = t.mkdir_ok(root, "d");
  CHECK(t.setxattr(d.ino, "user.dir", "1").ok());
  CHECK(t.setxattr(root, "user.root", "1").ok());
  CHECK(t.host_xattr(".", "user.root") == "1");
  CHECK(err(t.getxattr(4242, "user.x", 0)) == EBADF);
}

TEST_CASE("passthrough: system xattrs are refused and others pass through to the host's rules",
          "[passthrough][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  CHECK(err(t.setxattr(f.ino, "system.posix_acl_access", "x")) == EOPNOTSUPP);
  CHECK(err(t.getxattr(f.ino, "system.posix_acl_access", 0)) == EOPNOTSUPP);
  CHECK(err(t.removexattr(f.ino, "system.posix_acl_access")) == EOPNOTSUPP);
  CHECK(err(t.setxattr(f.ino, "", "x")) == ERANGE);
  CHECK(err(t.setxattr(f.ino, "user." + std::string(300, 'x'), "x")) == ERANGE);
  // An unknown namespace is the host's to refuse.
  CHECK(err(t.setxattr(f.ino, "bogus.name", "x")) == EOPNOTSUPP);
}

TEST_CASE("passthrough: xattrs of FIFOs and devices never open them", "[passthrough][xattr]") {
  TestFs t([](PassthroughConfig& c) { c.stat_virtualization = StatVirtualization::relaxed; });
  // A real host FIFO (say, in a bind-mounted tree): an open would block without a writer.
  REQUIRE(::mkfifo(t.host("fifo").c_str(), 0644) == 0);
  Entry fifo = t.lookup_ok(root, "fifo");
  CHECK((fifo.attr.mode & S_IFMT) == S_IFIFO);
  CHECK(err(t.getxattr(fifo.ino, "user.x", 0)) == ENODATA);
  CHECK(t.listxattr(fifo.ino, 0).ok());
  CHECK(err(t.setxattr(fifo.ino, "user.x", "v")) == EPERM);  // Linux: no user.* on FIFOs
  SetAttrIn times;
  times.valid = fuse::FATTR_MTIME_NOW;
  CHECK(t.setattr(fifo.ino, times).ok());
  CHECK(err(t.open(fifo.ino, O_RDONLY)) == ENXIO);
  CHECK(t.access(fifo.ino, R_OK).ok());
}
