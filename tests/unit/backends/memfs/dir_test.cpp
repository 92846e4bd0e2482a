// opendir, readdir, readdirplus, releasedir, fsyncdir.
#include <map>
#include <set>

#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

// Reads a directory through one handle in chunks of `room` entries, as the kernel would.
std::vector<ListedEntry> list_in_chunks(TestFs& t, InodeId dir, size_t room) {
  Result<OpenReply> h = t.opendir(dir);
  REQUIRE(h.ok());
  std::vector<ListedEntry> all;
  uint64_t offset = 0;
  for (;;) {
    CollectSink sink(room);
    REQUIRE(run_coro(t.fs->readdir(t.ctx, dir, h->fh, offset, sink)).ok());
    if (sink.entries.empty()) break;
    offset = sink.entries.back().next_offset;
    all.insert(all.end(), sink.entries.begin(), sink.entries.end());
  }
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, dir, h->fh)).ok());
  return all;
}

TEST_CASE("memfs: readdir lists '.' / '..' and the entries", "[memfs][dir]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  Entry a = t.file(d.ino, "a");
  Entry b = t.mkdir_ok(d.ino, "b");
  std::vector<ListedEntry> l = t.list(d.ino);
  REQUIRE(l.size() == 4);
  CHECK(l[0].name == ".");
  CHECK(l[0].ino == d.ino);
  CHECK(l[0].dtype == DT_DIR);
  CHECK(l[0].next_offset == 1);
  CHECK(l[1].name == "..");
  CHECK(l[1].ino == root);
  CHECK(l[1].next_offset == 2);
  CHECK(l[2].name == "a");
  CHECK(l[2].ino == a.ino);
  CHECK(l[3].name == "b");
  CHECK(l[3].ino == b.ino);
  CHECK(l[2].next_offset < l[3].next_offset);
  CHECK(l[2].next_offset > 2);

  std::vector<ListedEntry> r = t.list(root);
  REQUIRE(r.size() == 3);
  CHECK(r[1].ino == root);  // the root is its own parent
}

TEST_CASE("memfs: readdir d_type for every kind", "[memfs][dir]") {
  TestFs t;
  t.file(root, "reg");
  t.mkdir_ok(root, "dir");
  REQUIRE(t.symlink(root, "lnk", "x").ok());
  REQUIRE(t.mknod(root, "fifo", S_IFIFO | 0644).ok());
  REQUIRE(t.mknod(root, "chr", S_IFCHR | 0644, 1).ok());
  REQUIRE(t.mknod(root, "blk", S_IFBLK | 0644, 2).ok());
  REQUIRE(t.mknod(root, "sock", S_IFSOCK | 0644).ok());
  std::map<std::string, uint32_t> types;
  for (const ListedEntry& e : t.list(root))
    types[e.name] = e.dtype;
  CHECK(types["reg"] == DT_REG);
  CHECK(types["dir"] == DT_DIR);
  CHECK(types["lnk"] == DT_LNK);
  CHECK(types["fifo"] == DT_FIFO);
  CHECK(types["chr"] == DT_CHR);
  CHECK(types["blk"] == DT_BLK);
  CHECK(types["sock"] == DT_SOCK);
}

TEST_CASE("memfs: readdir continues at any offset it gave out", "[memfs][dir]") {
  TestFs t;
  for (int i = 0; i < 10; ++i)
    t.file(root, "f" + std::to_string(i));
  std::vector<ListedEntry> whole = t.list(root);
  REQUIRE(whole.size() == 12);
  for (size_t room : {size_t{1}, size_t{2}, size_t{3}, size_t{5}}) {
    CAPTURE(room);
    std::vector<ListedEntry> chunked = list_in_chunks(t, root, room);
    REQUIRE(chunked.size() == whole.size());
    for (size_t i = 0; i < whole.size(); ++i)
      CHECK(chunked[i].name == whole[i].name);
  }
  // Starting at offset 2 skips the dot entries.
  Result<OpenReply> h = t.opendir(root);
  REQUIRE(h.ok());
  CollectSink sink;
  REQUIRE(run_coro(t.fs->readdir(t.ctx, root, h->fh, 2, sink)).ok());
  CHECK(sink.entries.size() == 10);
  CHECK(sink.entries.front().name == "f0");
  CollectSink past;
  REQUIRE(run_coro(t.fs->readdir(t.ctx, root, h->fh, 1'000'000, past)).ok());
  CHECK(past.entries.empty());
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, root, h->fh)).ok());
}

TEST_CASE("memfs: readdir offsets stay valid while entries come and go", "[memfs][dir]") {
  TestFs t;
  for (int i = 0; i < 100; ++i)
    t.file(root, "f" + std::to_string(i));
  Result<OpenReply> h = t.opendir(root);
  REQUIRE(h.ok());

  CollectSink first(32);  // ".", "..", f0 .. f29
  REQUIRE(run_coro(t.fs->readdir(t.ctx, root, h->fh, 0, first)).ok());
  REQUIRE(first.entries.size() == 32);
  REQUIRE(first.entries.back().name == "f29");
  const uint64_t resume = first.entries.back().next_offset;

  // Between the calls: remove listed and unlisted entries, the very entry we resume after, and
  // add new ones.
  for (int i : {0, 5, 29, 30, 31, 50, 99})
    REQUIRE(t.unlink(root, "f" + std::to_string(i)).ok());
  for (int i = 0; i < 5; ++i)
    t.file(root, "new" + std::to_string(i));

  CollectSink rest;
  REQUIRE(run_coro(t.fs->readdir(t.ctx, root, h->fh, resume, rest)).ok());
  std::vector<std::string> got;
  for (const ListedEntry& e : rest.entries)
    got.push_back(e.name);
  std::vector<std::string> expected;
  for (int i = 32; i < 99; ++i) {
    if (i != 50) expected.push_back("f" + std::to_string(i));
  }
  for (int i = 0; i < 5; ++i)
    expected.push_back("new" + std::to_string(i));
  CHECK(got == expected);
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, root, h->fh)).ok());
}

TEST_CASE("memfs: a directory with 10000 entries", "[memfs][dir]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "big");
  constexpr int count = 10'000;
  for (int i = 0; i < count; ++i) {
    REQUIRE(t.mknod(d.ino, "entry-" + std::to_string(i), S_IFREG | 0644).ok());
  }
  for (int i = 0; i < count; i += 997) {
    CHECK(t.lookup(d.ino, "entry-" + std::to_string(i))->ino != 0);
  }
  std::vector<ListedEntry> all = list_in_chunks(t, d.ino, 128);
  CHECK(all.size() == count + 2);
  std::set<std::string> unique;
  for (const ListedEntry& e : all)
    unique.insert(e.name);
  CHECK(unique.size() == count + 2);
}

TEST_CASE("memfs: readdirplus", "[memfs][dir][plus]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  Entry a = t.file_with(d.ino, "a", "12345");
  Result<OpenReply> h = t.opendir(d.ino);
  REQUIRE(h.ok());
  CollectPlusSink sink;
  REQUIRE(run_coro(t.fs->readdirplus(t.ctx, d.ino, h->fh, 0, sink)).ok());
  REQUIRE(sink.entries.size() == 3);
  CHECK(sink.entries[0].name == ".");
  CHECK(sink.entries[0].entry.ino == d.ino);
  CHECK(sink.entries[0].entry.attr.ino == 0);
  CHECK(sink.entries[0].entry.entry_timeout.count() == 0);
  CHECK(sink.entries[1].name == "..");
  CHECK(sink.entries[1].entry.ino == root);
  CHECK(sink.entries[1].entry.attr.ino == 0);
  const ListedPlus& e = sink.entries[2];
  CHECK(e.name == "a");
  CHECK(e.dtype == DT_REG);
  CHECK(e.entry.ino == a.ino);
  CHECK(e.entry.attr.ino == a.ino);
  CHECK(e.entry.attr.size == 5);
  CHECK(e.entry.attr.mode == (S_IFREG | 0644));
  CHECK(e.entry.entry_timeout.count() > 0);
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, d.ino, h->fh)).ok());
}

TEST_CASE("memfs: readdirplus takes a reference only for entries the sink accepted",
          "[memfs][dir][plus]") {
  TestFs t;
  Entry a = t.file(root, "a");
  Entry b = t.file(root, "b");
  t.fs->forget(a.ino, 1);  // drop the creation references
  t.fs->forget(b.ino, 1);

  Result<OpenReply> h = t.opendir(root);
  REQUIRE(h.ok());
  CollectPlusSink sink(3);  // ".", "..", "a" fit; "b" does not
  REQUIRE(run_coro(t.fs->readdirplus(t.ctx, root, h->fh, 0, sink)).ok());
  REQUIRE(sink.entries.size() == 3);
  CHECK(sink.entries[2].name == "a");
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, root, h->fh)).ok());

  REQUIRE(t.unlink(root, "a").ok());
  REQUIRE(t.unlink(root, "b").ok());
  CHECK(t.getattr(a.ino).ok());              // the kernel holds the entry it received
  CHECK(t.getattr(b.ino).error() == EBADF);  // no reference was taken: gone
  t.fs->forget(a.ino, 1);
  CHECK(t.getattr(a.ino).error() == EBADF);
  CHECK(t.fs->used_inodes() == 1);
}

TEST_CASE("memfs: directory handle rules", "[memfs][dir]") {
  TestFs t;
  Entry f = t.file(root, "f");
  CHECK(t.opendir(f.ino).error() == ENOTDIR);
  CHECK(t.opendir(999).error() == EBADF);

  Result<OpenReply> h = t.opendir(root);
  REQUIRE(h.ok());
  CollectSink sink;
  CHECK(run_coro(t.fs->readdir(t.ctx, root, 777, 0, sink)).error() == EBADF);
  Entry d = t.mkdir_ok(root, "d");
  CHECK(run_coro(t.fs->readdir(t.ctx, d.ino, h->fh, 0, sink)).error() == EBADF);
  CHECK(run_coro(t.fs->fsyncdir(t.ctx, root, h->fh, false)).ok());
  CHECK(run_coro(t.fs->fsyncdir(t.ctx, root, 777, false)).error() == EBADF);
  REQUIRE(run_coro(t.fs->releasedir(t.ctx, root, h->fh)).ok());
  CHECK(run_coro(t.fs->readdir(t.ctx, root, h->fh, 0, sink)).error() == EBADF);
  CHECK(run_coro(t.fs->releasedir(t.ctx, root, h->fh)).error() == EBADF);
  // A file handle is not a directory handle.
  const HandleId fh = t.open_ok(f.ino);
  CHECK(run_coro(t.fs->readdir(t.ctx, f.ino, fh, 0, sink)).error() == EBADF);
  REQUIRE(t.release(f.ino, fh).ok());
}

}  // namespace
}  // namespace sandfs::memfs::testing
