// Merged listings: one entry per name, stable offsets, d_type, readdirplus references.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

TEST_CASE("a merged listing has one entry per name with the winning side's d_type",
          "[dualfs][readdir]") {
  DualFixture f;
  f.A.put("same", "a");
  f.B.mkdirs("same");  // B first: B's directory wins the name
  f.A.put("file_a", "x");
  REQUIRE(run_coro(f.B.fs->symlink(f.B.ctx, root, "link_b", "t")).ok());
  REQUIRE(run_coro(f.B.fs->mknod(f.B.ctx, root, "fifo_b", S_IFIFO | 0644, 0, 0)).ok());
  std::vector<Listed> all = f.list("");
  REQUIRE(all.size() == 6);
  CHECK(all[0].name == ".");
  CHECK(all[1].name == "..");
  std::map<std::string, uint32_t> types;
  for (const Listed& e : all)
    types[e.name] = e.dtype;
  CHECK(types["same"] == DT_DIR);
  CHECK(types["file_a"] == DT_REG);
  CHECK(types["link_b"] == DT_LNK);
  CHECK(types["fifo_b"] == DT_FIFO);
}

TEST_CASE("readdir offsets stay valid across calls and concurrent changes", "[dualfs][readdir]") {
  DualFixture f;
  for (int i = 0; i < 10; ++i) {
    f.A.put("a" + std::to_string(i), "");
    f.B.put("b" + std::to_string(i), "");
  }
  const InodeId dir = root;
  Result<OpenReply> d = run_coro(f.fs->opendir(f.ctx, dir, 0));
  REQUIRE(d.ok());
  std::vector<std::string> seen;
  uint64_t offset = 0;
  for (int round = 0; round < 100; ++round) {
    ListSink sink(3);
    REQUIRE(run_coro(f.fs->readdir(f.ctx, dir, d->fh, offset, sink)).ok());
    if (sink.entries.empty()) break;
    for (const Listed& e : sink.entries)
      seen.push_back(e.name);
    offset = sink.entries.back().next_offset;
    if (round == 1) {
      // Changes after the listing started do not shift what is still to come.
      REQUIRE(f.unlink("a0").ok());
      REQUIRE(f.create("zz").ok());
    }
  }
  REQUIRE(run_coro(f.fs->releasedir(f.ctx, dir, d->fh)).ok());
  CHECK(seen.size() == 22);
  std::sort(seen.begin(), seen.end());
  CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
  // A new handle sees the changes.
  std::vector<std::string> now = f.names("");
  CHECK(std::find(now.begin(), now.end(), "a0") == now.end());
  CHECK(std::find(now.begin(), now.end(), "zz") != now.end());
}

TEST_CASE("readdir d_ino matches the inode a later lookup answers", "[dualfs][readdir]") {
  DualFixture f;
  f.B.put("lower", "1");
  f.A.put("upper", "2");
  for (const Listed& e : f.list("")) {
    if (e.name == "." || e.name == "..") continue;
    CHECK(f.ino(e.name) == e.ino);
  }
}

TEST_CASE("readdirplus takes one reference per entry it hands out", "[dualfs][readdir]") {
  DualFixture f;
  f.B.put("x", "1");
  f.A.put("y", "2");
  Result<OpenReply> d = run_coro(f.fs->opendir(f.ctx, root, 0));
  REQUIRE(d.ok());
  PlusSink sink(3);  // ".", "..", and one entry
  REQUIRE(run_coro(f.fs->readdirplus(f.ctx, root, d->fh, 0, sink)).ok());
  REQUIRE(sink.entries.size() == 3);
  const ListedPlus& e = sink.entries[2];
  CHECK(e.entry.ino != 0);
  CHECK(e.entry.attr.ino == e.entry.ino);
  REQUIRE(run_coro(f.fs->releasedir(f.ctx, root, d->fh)).ok());
  // Only the handed-out entry is still referenced: forgetting it leaves nothing behind.
  f.fs->forget(e.entry.ino, 1);
  CHECK(f.fs->tracked_inodes() == 1);
  CHECK(f.a->outstanding().empty());
  CHECK(f.b->outstanding().empty());
}

TEST_CASE("rewinding a directory handle takes a fresh snapshot", "[dualfs][readdir]") {
  DualFixture f;
  f.B.put("old", "");
  Result<OpenReply> d = run_coro(f.fs->opendir(f.ctx, root, 0));
  REQUIRE(d.ok());
  ListSink first;
  REQUIRE(run_coro(f.fs->readdir(f.ctx, root, d->fh, 0, first)).ok());
  CHECK(first.entries.size() == 3);
  REQUIRE(f.create("new").ok());
  ListSink again;
  REQUIRE(run_coro(f.fs->readdir(f.ctx, root, d->fh, 0, again)).ok());
  CHECK(again.entries.size() == 4);
  REQUIRE(run_coro(f.fs->releasedir(f.ctx, root, d->fh)).ok());
}
