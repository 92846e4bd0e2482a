// B hard links: each name is its own DualFs inode, and copy-up breaks the link at the name written
// through (as kernel overlayfs without index=on): that name gets the new data, the others keep B's.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

// B: "d/x" and "d/y", two names of one file holding "lower\n".
void make_pair(DualFixture& f) {
  const InodeId x = f.B.put("d/x", "lower\n");
  const InodeId d = f.B.walk("d");
  Result<Entry> y = run_coro(f.B.fs->link(f.B.ctx, x, d, "y"));
  REQUIRE(y.ok());
  REQUIRE(y->attr.nlink == 2);
}

}  // namespace

TEST_CASE("writing one name of a B hard-link pair copies up that name only",
          "[dualfs][copyup][hardlink]") {
  DualFixture f;
  make_pair(f);
  // The name looked up last is not the one written: the write must still land under "x".
  const InodeId x = f.ino("d/x");
  const InodeId y = f.ino("d/y");
  CHECK(x != y);
  CHECK(f.attr("d/x").nlink == 2);
  Result<OpenReply> o = run_coro(f.fs->open(f.ctx, x, O_WRONLY | O_APPEND, false));
  REQUIRE(o.ok());
  std::string more = "more\n";
  iovec iov{more.data(), more.size()};
  IoVecs src{std::span<const iovec>(&iov, 1), more.size()};
  REQUIRE(run_coro(f.fs->write(f.ctx, x, o->fh, 6, src, false)).ok());
  REQUIRE(run_coro(f.fs->release(f.ctx, x, o->fh, 0)).ok());

  CHECK(*f.A.content("d/x") == "lower\nmore\n");
  CHECK_FALSE(f.A.exists("d/y"));
  CHECK(*f.read("d/x") == "lower\nmore\n");
  CHECK(*f.read("d/y") == "lower\n");
  CHECK(*f.B.content("d/x") == "lower\n");
  CHECK(f.attr("d/x").nlink == 1);
  CHECK(f.ino("d/x") == x);
  CHECK(f.ino("d/y") == y);

  // The other name copies up on its own when written.
  REQUIRE(f.write("d/y", "Y", O_RDWR).ok());
  CHECK(*f.read("d/y") == "Yower\n");
  CHECK(*f.read("d/x") == "lower\nmore\n");
  CHECK(f.fs->copy_ups() == 2);
}

TEST_CASE("each name of a B hard link is one inode however often it is looked up",
          "[dualfs][lookup][hardlink]") {
  DualFixture f;
  make_pair(f);
  const InodeId d = f.ino("d");
  const InodeId x1 = f.ino("d/x");
  const InodeId y1 = f.ino("d/y");
  const InodeId x2 = f.ino("d/x");
  const InodeId y2 = f.ino("d/y");
  CHECK(x1 == x2);
  CHECK(y1 == y2);
  CHECK(x1 != y1);
  // One pin per node: the B file is pinned by both names, once each.
  const InodeId b_file = f.B.walk("d/x");
  CHECK(f.b->refs(b_file) == 2);
  // Forgetting both names (each looked up twice) and the directory (once per path walk) gives
  // every pin back.
  f.fs->forget(x1, 2);
  f.fs->forget(y1, 2);
  f.fs->forget(d, 5);
  CHECK(f.b->outstanding().empty());
  CHECK(f.a->outstanding().empty());
  CHECK(f.fs->tracked_inodes() == 1);
}

TEST_CASE("link of one name of a B hard-link pair copies up that name and links it in A",
          "[dualfs][copyup][hardlink]") {
  DualFixture f;
  make_pair(f);
  const InodeId y = f.ino("d/y");  // looked up first: anchors nothing for "x"
  const InodeId x = f.ino("d/x");
  const InodeId d = f.ino("d");
  Result<Entry> z = run_coro(f.fs->link(f.ctx, x, d, "z"));
  REQUIRE(z.ok());
  CHECK(z->ino == x);
  CHECK(z->attr.nlink == 2);
  CHECK(f.A.exists("d/x"));
  CHECK(f.A.exists("d/z"));
  CHECK_FALSE(f.A.exists("d/y"));
  REQUIRE(f.write("d/z", "Z", O_RDWR).ok());
  CHECK(*f.read("d/x") == "Zower\n");
  CHECK(*f.read("d/y") == "lower\n");
  CHECK(f.ino("d/y") == y);
}

TEST_CASE("a renamed name of a B hard-link pair moves alone", "[dualfs][copyup][hardlink]") {
  DualFixture f;
  make_pair(f);
  const InodeId y = f.ino("d/y");
  const InodeId x = f.ino("d/x");
  REQUIRE(f.rename("d/x", "d/w").ok());
  CHECK(f.ino("d/w") == x);
  CHECK(f.lookup("d/x").error() == ENOENT);
  CHECK(f.ino("d/y") == y);
  CHECK(*f.read("d/w") == "lower\n");
  CHECK(*f.read("d/y") == "lower\n");
  CHECK(f.names("d") == std::vector<std::string>{"w", "y"});
}
