// Copy-up: what triggers it, what it copies, that it happens once, and that it is atomic.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

std::string pattern(size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
  return s;
}

SetAttrIn owner_mode_times() {
  SetAttrIn in;
  in.valid =
      fuse::FATTR_UID | fuse::FATTR_GID | fuse::FATTR_MODE | fuse::FATTR_ATIME | fuse::FATTR_MTIME;
  in.uid = 1234;
  in.gid = 5678;
  in.mode = 04751;
  in.atime = {1000000, 5};
  in.mtime = {2000000, 7};
  return in;
}

}  // namespace

TEST_CASE("a write-open copies data in chunks and keeps the inode number", "[dualfs][copyup]") {
  DualFixture f(read_b_write_a_policy(), 64 * 1024);
  const std::string data = pattern(3 * 1024 * 1024 + 123);
  f.B.put("dir/big", data);
  const InodeId before = f.ino("dir/big");
  REQUIRE(f.write("dir/big", "HEAD", O_RDWR).ok());
  CHECK(f.ino("dir/big") == before);
  std::string expected = data;
  expected.replace(0, 4, "HEAD");
  CHECK(*f.A.content("dir/big") == expected);
  CHECK(*f.B.content("dir/big") == data);
  CHECK(f.fs->copy_ups() == 1);
  CHECK(f.fs->copied_bytes() == data.size());
  CHECK(f.b->reads >= data.size() / (64 * 1024));
  // The parent was promoted with B's mode.
  CHECK(f.A.attr("dir").mode == (S_IFDIR | 0755));
}

TEST_CASE("an O_TRUNC open copies no data", "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("f", pattern(100000));
  REQUIRE(f.write("f", "new", O_WRONLY | O_TRUNC).ok());
  CHECK(*f.read("f") == "new");
  CHECK(f.fs->copied_bytes() == 0);
  CHECK(f.fs->copy_ups() == 1);
}

TEST_CASE("a read-only open does not copy up", "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("f", "x");
  CHECK(*f.read("f") == "x");
  CHECK(f.fs->copy_ups() == 0);
  CHECK_FALSE(f.A.exists("f"));
}

TEST_CASE("copy-up preserves owner mode times and xattrs", "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("f", "content");
  const InodeId b_ino = f.B.walk("f");
  REQUIRE(run_coro(f.B.fs->setattr(f.B.ctx, b_ino, owner_mode_times())).ok());
  const std::string v1 = "value one";
  REQUIRE(run_coro(f.B.fs->setxattr(f.B.ctx, b_ino, "user.one", v1, 0)).ok());
  const std::string v2(3000, 'z');
  REQUIRE(run_coro(f.B.fs->setxattr(f.B.ctx, b_ino, "user.two", v2, 0)).ok());
  const Attr b = f.B.attr("f");

  const std::string extra = "added";
  const InodeId ino = f.ino("f");
  REQUIRE(run_coro(f.fs->setxattr(f.ctx, ino, "user.three", extra, 0)).ok());
  REQUIRE(f.A.exists("f"));
  const Attr a = f.A.attr("f");
  CHECK(a.mode == b.mode);
  CHECK(a.uid == 1234);
  CHECK(a.gid == 5678);
  CHECK(a.mtime.sec == b.mtime.sec);
  CHECK(a.mtime.nsec == b.mtime.nsec);
  CHECK(a.atime.sec == b.atime.sec);
  CHECK(*f.A.content("f") == "content");
  const InodeId a_ino = f.A.walk("f");
  Result<XattrReply> one = run_coro(f.A.fs->getxattr(f.A.ctx, a_ino, "user.one", 100));
  REQUIRE(one.ok());
  CHECK(std::string(one->data.begin(), one->data.end()) == v1);
  Result<XattrReply> two = run_coro(f.A.fs->getxattr(f.A.ctx, a_ino, "user.two", 4000));
  REQUIRE(two.ok());
  CHECK(two->data.size() == 3000);
  CHECK(run_coro(f.A.fs->getxattr(f.A.ctx, a_ino, "user.three", 100)).ok());
  // B is untouched.
  CHECK(run_coro(f.B.fs->getxattr(f.B.ctx, b_ino, "user.three", 100)).error() == ENODATA);
}

TEST_CASE("setattr copies up and applies the change in A", "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("f", "0123456789");
  SetAttrIn in;
  in.valid = fuse::FATTR_SIZE;
  in.size = 4;
  Result<AttrReply> r = f.setattr("f", in);
  REQUIRE(r.ok());
  CHECK(r->attr.size == 4);
  CHECK(r->attr.ino == f.ino("f"));
  CHECK(*f.read("f") == "0123");
  CHECK(*f.B.content("f") == "0123456789");
  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0600;
  REQUIRE(f.setattr("f", chmod).ok());
  CHECK((f.attr("f").mode & 07777) == 0600);
}

TEST_CASE("symlinks and special files are copied up with their type", "[dualfs][copyup]") {
  DualFixture f;
  REQUIRE(run_coro(f.B.fs->symlink(f.B.ctx, root, "ln", "somewhere")).ok());
  REQUIRE(run_coro(f.B.fs->mknod(f.B.ctx, root, "fifo", S_IFIFO | 0640, 0, 0)).ok());
  SetAttrIn chown;
  chown.valid = fuse::FATTR_UID;
  chown.uid = 42;
  REQUIRE(f.setattr("ln", chown).ok());
  REQUIRE(f.setattr("fifo", chown).ok());
  CHECK(S_ISLNK(f.A.attr("ln").mode));
  CHECK(f.A.attr("ln").uid == 42);
  Result<std::string> t = run_coro(f.A.fs->readlink(f.A.ctx, f.A.walk("ln")));
  REQUIRE(t.ok());
  CHECK(*t == "somewhere");
  CHECK(f.A.attr("fifo").mode == (S_IFIFO | 0640));
  CHECK(f.fs->copy_ups() == 2);
}

TEST_CASE("a chmod of a B directory promotes it instead of failing", "[dualfs][copyup]") {
  DualFixture f;
  f.B.mkdirs("a/b", 0750);
  f.B.put("a/b/file", "x");
  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0700;
  REQUIRE(f.setattr("a/b", chmod).ok());
  CHECK(f.A.attr("a/b").mode == (S_IFDIR | 0700));
  CHECK(f.A.attr("a").mode == (S_IFDIR | 0750));
  CHECK(*f.read("a/b/file") == "x");  // still merged
  CHECK_FALSE(f.A.exists("a/b/file"));
}

TEST_CASE("link of a B file copies it up and both names share the inode", "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("orig", "data");
  const InodeId ino = f.ino("orig");
  Result<Entry> l = run_coro(f.fs->link(f.ctx, ino, root, "alias"));
  REQUIRE(l.ok());
  CHECK(l->ino == ino);
  REQUIRE(f.write("alias", "DA").ok());
  CHECK(*f.read("orig") == "DAta");
  CHECK(f.A.attr("orig").nlink == 2);
}

TEST_CASE("concurrent write-opens of one file make exactly one copy", "[dualfs][copyup]") {
  DualFixture f(read_b_write_a_policy(), 4096);
  const std::string data = pattern(256 * 1024);
  f.B.put("shared", data);
  f.B.put("other", data);
  f.b->yield = true;  // every chunk read suspends, so the opens interleave
  const InodeId shared = f.ino("shared");
  const InodeId other = f.ino("other");
  boost::asio::io_context io;
  int ok = 0;
  int failed = 0;
  auto opener = [&](InodeId ino) -> Task<void> {
    Result<OpenReply> o = co_await f.fs->open(f.ctx, ino, O_RDWR, false);
    if (!o) {
      ++failed;
      co_return;
    }
    ++ok;
    Status r = co_await f.fs->release(f.ctx, ino, o->fh, 0);
    (void)r;
  };
  for (int i = 0; i < 8; ++i) {
    boost::asio::co_spawn(io, opener(shared), boost::asio::detached);
    boost::asio::co_spawn(io, opener(other), boost::asio::detached);
  }
  io.run();
  CHECK(ok == 16);
  CHECK(failed == 0);
  CHECK(f.fs->copy_ups() == 2);
  CHECK(*f.A.content("shared") == data);
  CHECK(*f.A.content("other") == data);
  // Nothing is left in the staging directory.
  f.b->yield = false;
  const InodeId staging = f.A.walk(".sandfs-dual.staging");
  REQUIRE(staging != 0);
  Result<OpenReply> d = run_coro(f.A.fs->opendir(f.A.ctx, staging, 0));
  REQUIRE(d.ok());
  ListSink sink;
  REQUIRE(run_coro(f.A.fs->readdir(f.A.ctx, staging, d->fh, 0, sink)).ok());
  CHECK(sink.entries.size() == 2);
}

TEST_CASE("a handle opened on B before a copy-up keeps reading B's bytes", "[dualfs][copyup]") {
  DualFixture f;
  f.B.put("f", "old!");
  const InodeId ino = f.ino("f");
  Result<OpenReply> reader = run_coro(f.fs->open(f.ctx, ino, O_RDONLY, false));
  REQUIRE(reader.ok());
  REQUIRE(f.write("f", "NEW!").ok());
  std::string buf(4, '\0');
  iovec iov{buf.data(), buf.size()};
  IoVecs dst{std::span<const iovec>(&iov, 1), buf.size()};
  Result<size_t> n = run_coro(f.fs->read(f.ctx, ino, reader->fh, 0, 4, dst));
  REQUIRE(n.ok());
  CHECK(buf == "old!");
  REQUIRE(run_coro(f.fs->release(f.ctx, ino, reader->fh, 0)).ok());
  CHECK(*f.read("f") == "NEW!");
}
