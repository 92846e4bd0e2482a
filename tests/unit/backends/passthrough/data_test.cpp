// open, read, write, flush, release, fsync, fallocate, lseek, copy_file_range.
#include <linux/falloc.h>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: read a host file through a handle", "[passthrough][data]") {
  TestFs t;
  t.host_write("f", "hello world");
  Entry f = t.lookup_ok(root, "f");
  HandleId fh = t.open_ok(f.ino, O_RDONLY);
  CHECK(*t.read(f.ino, fh, 0, 5) == "hello");
  CHECK(*t.read(f.ino, fh, 6, 100) == "world");
  CHECK(t.read(f.ino, fh, 100, 10)->empty());
  CHECK(t.release(f.ino, fh).ok());
  CHECK(err(t.read(f.ino, fh, 0, 5)) == EBADF);
}

TEST_CASE("passthrough: write then read back and see it on the host", "[passthrough][data]") {
  TestFs t;
  Result<CreateReply> c = t.create(root, "f");
  REQUIRE(c.ok());
  const InodeId ino = c->entry.ino;
  const HandleId fh = c->open.fh;
  std::string big(1 << 20, 'z');
  for (size_t i = 0; i < big.size(); i += 4096)
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  CHECK(*t.write(ino, fh, 0, big) == big.size());
  CHECK(*t.write(ino, fh, 10, "HELLO") == 5);
  big.replace(10, 5, "HELLO");
  CHECK(*t.read(ino, fh, 0, static_cast<uint32_t>(big.size())) == big);
  CHECK(t.release(ino, fh).ok());
  CHECK(t.host_read("f") == big);
  CHECK(t.attr(ino).size == big.size());
}

TEST_CASE("passthrough: handles check their access mode and inode", "[passthrough][data]") {
  TestFs t;
  Entry f = t.file_with(root, "f", "abc");
  Entry g = t.file_with(root, "g", "abc");
  HandleId ro = t.open_ok(f.ino, O_RDONLY);
  CHECK(err(t.write(f.ino, ro, 0, "x")) == EBADF);
  HandleId wo = t.open_ok(f.ino, O_WRONLY);
  CHECK(err(t.read(f.ino, wo, 0, 3)) == EBADF);
  // A valid handle paired with another inode is refused.
  CHECK(err(t.read(g.ino, ro, 0, 3)) == EBADF);
  CHECK(err(t.read(f.ino, 9999, 0, 3)) == EBADF);
  CHECK(t.release(f.ino, ro).ok());
  CHECK(t.release(f.ino, wo).ok());
  CHECK(err(t.release(f.ino, wo)) == EBADF);
}
