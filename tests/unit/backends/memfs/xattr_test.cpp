// Extended attributes.
#include <sys/xattr.h>

#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

std::string as_string(const XattrReply& r) {
  return std::string(r.data.begin(), r.data.end());
}

TEST_CASE("memfs: setxattr and getxattr", "[memfs][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.color", "blue").ok());

  Result<XattrReply> size_only = t.getxattr(f.ino, "user.color", 0);
  REQUIRE(size_only.ok());
  CHECK(size_only->size == 4);
  CHECK(size_only->data.empty());

  Result<XattrReply> value = t.getxattr(f.ino, "user.color", 100);
  REQUIRE(value.ok());
  CHECK(value->size == 4);
  CHECK(as_string(*value) == "blue");

  CHECK(t.getxattr(f.ino, "user.color", 3).error() == ERANGE);
  CHECK(t.getxattr(f.ino, "user.missing", 100).error() == ENODATA);
  CHECK(t.getxattr(f.ino, "user.missing", 0).error() == ENODATA);

  REQUIRE(t.setxattr(f.ino, "user.color", "green!").ok());  // plain set replaces
  CHECK(as_string(*t.getxattr(f.ino, "user.color", 100)) == "green!");
}

TEST_CASE("memfs: xattr create and replace flags", "[memfs][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.a", "1", XATTR_CREATE).ok());
  CHECK(t.setxattr(f.ino, "user.a", "2", XATTR_CREATE).error() == EEXIST);
  CHECK(t.setxattr(f.ino, "user.b", "2", XATTR_REPLACE).error() == ENODATA);
  REQUIRE(t.setxattr(f.ino, "user.a", "3", XATTR_REPLACE).ok());
  CHECK(as_string(*t.getxattr(f.ino, "user.a", 10)) == "3");
  CHECK(t.getxattr(f.ino, "user.b", 10).error() == ENODATA);
  CHECK(t.setxattr(f.ino, "user.a", "4", 0x8).error() == EINVAL);
}

TEST_CASE("memfs: listxattr is sorted and NUL-terminated", "[memfs][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  Result<XattrReply> empty = t.listxattr(f.ino, 0);
  REQUIRE(empty.ok());
  CHECK(empty->size == 0);

  REQUIRE(t.setxattr(f.ino, "user.zeta", "z").ok());
  REQUIRE(t.setxattr(f.ino, "trusted.alpha", "a").ok());
  REQUIRE(t.setxattr(f.ino, "user.beta", "").ok());
  const std::string expected = std::string("trusted.alpha\0user.beta\0user.zeta\0", 34);

  Result<XattrReply> size_only = t.listxattr(f.ino, 0);
  REQUIRE(size_only.ok());
  CHECK(size_only->size == expected.size());
  CHECK(size_only->data.empty());
  Result<XattrReply> list = t.listxattr(f.ino, 1000);
  REQUIRE(list.ok());
  CHECK(as_string(*list) == expected);
  CHECK(t.listxattr(f.ino, static_cast<uint32_t>(expected.size()) - 1).error() == ERANGE);
}

TEST_CASE("memfs: removexattr", "[memfs][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.a", "1").ok());
  REQUIRE(t.removexattr(f.ino, "user.a").ok());
  CHECK(t.getxattr(f.ino, "user.a", 10).error() == ENODATA);
  CHECK(t.removexattr(f.ino, "user.a").error() == ENODATA);
  CHECK(t.listxattr(f.ino, 0)->size == 0);
}

TEST_CASE("memfs: xattrs on directories / symlinks and special files", "[memfs][xattr]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  Result<Entry> l = t.symlink(root, "l", "target");
  Result<Entry> n = t.mknod(root, "n", S_IFIFO | 0644);
  REQUIRE(l.ok());
  REQUIRE(n.ok());
  for (InodeId ino : {d.ino, l->ino, n->ino, root}) {
    CAPTURE(ino);
    REQUIRE(t.setxattr(ino, "user.k", "v").ok());
    CHECK(as_string(*t.getxattr(ino, "user.k", 10)) == "v");
  }
}

TEST_CASE("memfs: system. xattrs (POSIX ACLs) are refused / not stored", "[memfs][xattr]") {
  // Regression: cp -a sets final modes through system.posix_acl_access and falls back to chmod
  // only on EOPNOTSUPP; storing the ACL opaquely left copies with their creation modes.
  TestFs t;
  Entry f = t.file(root, "f", 0600);
  const std::string acl("\x02\0\0\0\x01\0\x06\0\xff\xff\xff\xff", 12);
  CHECK(t.setxattr(f.ino, "system.posix_acl_access", acl).error() == EOPNOTSUPP);
  CHECK(t.setxattr(f.ino, "system.posix_acl_default", acl).error() == EOPNOTSUPP);
  CHECK(t.getxattr(f.ino, "system.posix_acl_access", 100).error() == EOPNOTSUPP);
  CHECK(t.removexattr(f.ino, "system.posix_acl_access").error() == EOPNOTSUPP);
  CHECK(t.listxattr(f.ino, 0)->size == 0);
  CHECK(t.attr(f.ino).mode == (S_IFREG | 0600));
  CHECK(t.setxattr(f.ino, "security.selinux", "ctx").ok());
  CHECK(t.setxattr(f.ino, "trusted.overlay.opaque", "y").ok());
}

TEST_CASE("memfs: empty xattr values", "[memfs][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.empty", "").ok());
  Result<XattrReply> r = t.getxattr(f.ino, "user.empty", 10);
  REQUIRE(r.ok());
  CHECK(r->size == 0);
  CHECK(r->data.empty());
}

TEST_CASE("memfs: xattr size limits", "[memfs][xattr]") {
  TestFs t;
  Entry f = t.file(root, "f");
  CHECK(t.setxattr(f.ino, "user.big", std::string(64 * 1024 + 1, 'v')).error() == E2BIG);
  CHECK(t.setxattr(f.ino, "user.max", std::string(64 * 1024, 'v')).ok());
  const std::string long_name = "user." + std::string(251, 'n');  // 256 bytes
  CHECK(t.setxattr(f.ino, long_name, "v").error() == ERANGE);
  CHECK(t.getxattr(f.ino, long_name, 10).error() == ERANGE);
  CHECK(t.setxattr(f.ino, long_name.substr(1), "v").ok());
  CHECK(t.setxattr(f.ino, "", "v").error() == ERANGE);
}

TEST_CASE("memfs: xattrs are charged against capacity", "[memfs][xattr][capacity]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 100;
  TestFs t(cfg);
  Entry f = t.file(root, "f");
  REQUIRE(t.setxattr(f.ino, "user.a", std::string(50, 'x')).ok());  // 6 + 50
  CHECK(t.fs->used_bytes() == 56);
  CHECK(t.setxattr(f.ino, "user.b", std::string(40, 'x')).error() == ENOSPC);  // 6 + 40
  CHECK(t.getxattr(f.ino, "user.b", 0).error() == ENODATA);
  CHECK(t.fs->used_bytes() == 56);
  // Growing a value charges only the difference; shrinking gives back.
  REQUIRE(t.setxattr(f.ino, "user.a", std::string(94, 'x')).ok());
  CHECK(t.fs->used_bytes() == 100);
  CHECK(t.setxattr(f.ino, "user.a", std::string(95, 'x')).error() == ENOSPC);
  CHECK(t.getxattr(f.ino, "user.a", 0)->size == 94);
  REQUIRE(t.setxattr(f.ino, "user.a", "x").ok());
  CHECK(t.fs->used_bytes() == 7);
  REQUIRE(t.removexattr(f.ino, "user.a").ok());
  CHECK(t.fs->used_bytes() == 0);

  // Released when the inode goes.
  REQUIRE(t.setxattr(f.ino, "user.c", "12345").ok());
  CHECK(t.fs->used_bytes() == 11);
  REQUIRE(t.unlink(root, "f").ok());
  t.fs->forget(f.ino, 1);
  CHECK(t.fs->used_bytes() == 0);
}

}  // namespace
}  // namespace sandfs::memfs::testing
