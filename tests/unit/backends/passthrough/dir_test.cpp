// opendir, readdir, readdirplus, releasedir, fsyncdir.
#include <chrono>
#include <map>
#include <set>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: readdir lists everything with . and ..", "[passthrough][dir]") {
  TestFs t;
  t.file(root, "a");
  t.mkdir_ok(root, "b");
  t.host_write("c", "host");
  CHECK(t.names(root) == std::vector<std::string>{".", "..", "a", "b", "c"});
  Entry b = t.lookup_ok(root, "b");
  CHECK(t.names(b.ino) == std::vector<std::string>{".", ".."});
  for (const ListedEntry& e : t.list(b.ino)) {
    if (e.name == ".") CHECK(e.ino == b.ino);
    if (e.name == "..") CHECK(e.ino == root);
  }
  Entry a = t.lookup_ok(root, "a");
  CHECK(err(t.opendir(a.ino)) == ENOTDIR);
  CHECK(err(t.opendir(4242)) == EBADF);
}

TEST_CASE("passthrough: readdir reports the guest's file types", "[passthrough][dir]") {
  TestFs t;
  t.file(root, "reg");
  t.mkdir_ok(root, "dir");
  REQUIRE(t.symlink(root, "lnk", "reg").ok());
  REQUIRE(t.mknod(root, "fifo", S_IFIFO | 0644).ok());
  REQUIRE(t.mknod(root, "chr", S_IFCHR | 0644, 0x0101).ok());
  REQUIRE(t.mknod(root, "blk", S_IFBLK | 0644, 0x0801).ok());
  REQUIRE(t.mknod(root, "sock", S_IFSOCK | 0644).ok());
  REQUIRE(::symlink("x", t.host("hostlink").c_str()) == 0);
  t.host_write("corrupt", "x");
  REQUIRE(::lsetxattr(t.host("corrupt").c_str(), t.config.stat_xattr.c_str(), "bad", 3, 0) == 0);
  const std::map<std::string, uint32_t> want = {
      {"reg", DT_REG},     {"dir", DT_DIR}, {"lnk", DT_LNK},   {"fifo", DT_FIFO},
      {"chr", DT_CHR},     {"blk", DT_BLK}, {"sock", DT_SOCK}, {"hostlink", DT_LNK},
      {"corrupt", DT_REG}, {".", DT_DIR},   {"..", DT_DIR},
  };
  // Twice: once with everything tracked (created through us), once from a fresh mount whose
  // store knows nothing (the records are read from the host).
  for (int round = 0; round < 2; ++round) {
    std::map<std::string, uint32_t> got;
    if (round == 0) {
      for (const ListedEntry& e : t.list(root))
        got[e.name] = e.dtype;
    } else {
      PassthroughConfig c = t.config;
      MakeResult fresh = make_passthrough(c);
      REQUIRE(fresh);
      Result<OpenReply> d = run_io(fresh.fs->opendir(t.ctx, root, 0));
      REQUIRE(d.ok());
      CollectSink sink;
      REQUIRE(run_io(fresh.fs->readdir(t.ctx, root, d->fh, 0, sink)).ok());
      for (const ListedEntry& e : sink.entries)
        got[e.name] = e.dtype;
      CHECK(fresh.fs->tracked_inodes() == 1);  // listing takes no references
    }
    INFO("round " << round);
    CHECK(got == want);
  }
}

TEST_CASE("passthrough: readdir offsets resume after any entry", "[passthrough][dir]") {
  TestFs t;
  for (int i = 0; i < 50; ++i)
    t.file(root, "f" + std::to_string(i));
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  CollectSink all;
  REQUIRE(run_io(t.fs->readdir(t.ctx, root, d->fh, 0, all)).ok());
  REQUIRE(all.entries.size() == 52);
  for (size_t cut : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{25}, size_t{51}}) {
    CollectSink rest;
    REQUIRE(run_io(t.fs->readdir(t.ctx, root, d->fh, all.entries[cut].next_offset, rest)).ok());
    REQUIRE(rest.entries.size() == all.entries.size() - cut - 1);
    for (size_t i = 0; i < rest.entries.size(); ++i)
      CHECK(rest.entries[i].name == all.entries[cut + 1 + i].name);
  }
  // Reading in small pieces, as the kernel does with a small buffer.
  std::vector<std::string> pieces;
  uint64_t off = 0;
  for (;;) {
    CollectSink few(3);
    REQUIRE(run_io(t.fs->readdir(t.ctx, root, d->fh, off, few)).ok());
    if (few.entries.empty()) break;
    for (const ListedEntry& e : few.entries)
      pieces.push_back(e.name);
    off = few.entries.back().next_offset;
  }
  CHECK(pieces.size() == 52);
  CHECK(std::set<std::string>(pieces.begin(), pieces.end()).size() == 52);
  CHECK(t.releasedir(root, d->fh).ok());
  CHECK(err(run_io(t.fs->readdir(t.ctx, root, d->fh, 0, all))) == EBADF);
  CHECK(err(t.releasedir(root, d->fh)) == EBADF);
}

TEST_CASE("passthrough: offsets stay valid while entries come and go", "[passthrough][dir]") {
  TestFs t;
  for (int i = 0; i < 200; ++i)
    t.file(root, "f" + std::to_string(i));
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  std::set<std::string> seen;
  uint64_t off = 0;
  int round = 0;
  for (;;) {
    CollectSink few(7);
    REQUIRE(run_io(t.fs->readdir(t.ctx, root, d->fh, off, few)).ok());
    if (few.entries.empty()) break;
    for (const ListedEntry& e : few.entries) {
      CHECK(seen.insert(e.name).second);  // never twice
    }
    off = few.entries.back().next_offset;
    // Churn between calls: new names and removed ones that were already listed.
    t.file(root, "new" + std::to_string(round));
    ++round;
  }
  // Every original name was listed exactly once.
  for (int i = 0; i < 200; ++i)
    CHECK(seen.count("f" + std::to_string(i)) == 1);
  CHECK(t.releasedir(root, d->fh).ok());
}

TEST_CASE("passthrough: readdirplus returns entries with lookups", "[passthrough][dir]") {
  TestFs t;
  Entry a = t.file_with(root, "a", "12345");
  Entry b = t.mkdir_ok(root, "b");
  Result<Entry> l = t.symlink(root, "l", "a");
  REQUIRE(l.ok());
  t.host_write("host", "xyz");
  t.forget(a.ino);
  t.forget(b.ino);
  t.forget(l->ino);
  std::vector<ListedPlus> got = t.list_plus(root);
  std::map<std::string, ListedPlus> by;
  for (const ListedPlus& e : got)
    by[e.name] = e;
  REQUIRE(by.size() == 6);
  CHECK(by["."].entry.ino == root);
  CHECK(by[".."].entry.ino == root);
  CHECK(by["a"].entry.attr.size == 5);
  CHECK(by["a"].entry.ino == a.ino);
  CHECK(by["a"].dtype == DT_REG);
  CHECK(by["b"].dtype == DT_DIR);
  CHECK(by["l"].dtype == DT_LNK);
  CHECK(by["host"].entry.attr.size == 3);
  for (const char* n : {"a", "b", "l", "host"}) {
    INFO(n);
    CHECK(t.fs->lookup_count(by[n].entry.ino) == 1);
    CHECK(by[n].entry.attr.ino == by[n].entry.ino);
  }
}

TEST_CASE("passthrough: readdirplus gives back references the sink refused", "[passthrough][dir]") {
  TestFs t;
  for (int i = 0; i < 10; ++i)
    t.host_write("f" + std::to_string(i), "x");
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  std::vector<ListedPlus> all;
  uint64_t off = 0;
  for (;;) {
    CollectPlusSink few(4);
    REQUIRE(run_io(t.fs->readdirplus(t.ctx, root, d->fh, off, few)).ok());
    if (few.entries.empty()) break;
    for (const ListedPlus& e : few.entries)
      all.push_back(e);
    off = few.entries.back().next_offset;
  }
  CHECK(all.size() == 12);
  for (const ListedPlus& e : all) {
    if (e.name == "." || e.name == "..") continue;
    INFO(e.name);
    CHECK(t.fs->lookup_count(e.entry.ino) == 1);  // exactly the ones that were sent
  }
  CHECK(t.releasedir(root, d->fh).ok());
}

TEST_CASE(
    "passthrough: readdirplus lists a corrupt entry that only answers EIO and skips vanished ones",
    "[passthrough][dir]") {
  TestFs t;
  t.host_write("good", "x");
  t.host_write("bad", "x");
  t.host_write("gone", "x");
  REQUIRE(::lsetxattr(t.host("bad").c_str(), t.config.stat_xattr.c_str(), "bad", 3, 0) == 0);
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  // Read the host entries into the handle's batch, then delete one behind our back.
  CollectPlusSink first(1);
  REQUIRE(run_io(t.fs->readdirplus(t.ctx, root, d->fh, 0, first)).ok());
  REQUIRE(first.entries.size() == 1);
  REQUIRE(::unlink(t.host("gone").c_str()) == 0);
  CollectPlusSink rest;
  REQUIRE(run_io(t.fs->readdirplus(t.ctx, root, d->fh, first.entries[0].next_offset, rest)).ok());
  std::map<std::string, Entry> by;
  for (const ListedPlus& e : first.entries)
    by[e.name] = e.entry;
  for (const ListedPlus& e : rest.entries)
    by[e.name] = e.entry;
  // (Unless the host listed it first, before it went.)
  if (first.entries[0].name != "gone") CHECK(by.count("gone") == 0);
  // Listed with its real id (glibc hides a d_ino of 0) and no attributes worth caching.
  REQUIRE(by.count("bad") == 1);
  const Entry bad = by["bad"];
  CHECK(bad.ino == static_cast<InodeId>(t.host_stat("bad").st_ino));
  CHECK(bad.attr.mode == S_IFREG);
  CHECK(bad.attr.uid == 0);
  CHECK(bad.attr.size == 0);
  CHECK(bad.entry_timeout.count() == 0);
  CHECK(bad.attr_timeout.count() == 0);
  CHECK(t.fs->lookup_count(bad.ino) == 1);
  CHECK(err(t.getattr(bad.ino)) == EIO);
  CHECK(err(t.open(bad.ino, O_RDONLY)) == EIO);
  CHECK(err(t.lookup(root, "bad")) == EIO);
  t.forget(bad.ino);
  CHECK(t.fs->lookup_count(bad.ino) == 0);
  REQUIRE(by.count("good") == 1);
  CHECK(by["good"].ino != 0);
  CHECK(t.releasedir(root, d->fh).ok());
}

TEST_CASE("passthrough: readdir after readdirplus on one handle reports the guest's types",
          "[passthrough][dir]") {
  // The kernel (READDIRPLUS_AUTO) answers the first call of a listing with readdirplus and the
  // rest with plain readdir, on the same handle.
  TestFs t;
  for (int i = 0; i < 40; ++i)
    REQUIRE(t.mknod(root, "fifo" + std::to_string(i), S_IFIFO | 0644).ok());
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  CollectPlusSink first(3);
  REQUIRE(run_io(t.fs->readdirplus(t.ctx, root, d->fh, 0, first)).ok());
  REQUIRE(first.entries.size() == 3);
  CollectSink rest;
  REQUIRE(run_io(t.fs->readdir(t.ctx, root, d->fh, first.entries.back().next_offset, rest)).ok());
  CHECK(first.entries.size() + rest.entries.size() == 42);
  for (const ListedEntry& e : rest.entries) {
    INFO(e.name);
    CHECK(e.dtype == (e.name[0] == '.' ? DT_DIR : DT_FIFO));
  }
  CHECK(t.releasedir(root, d->fh).ok());
}

TEST_CASE("passthrough: fsyncdir and a host-added file on a new handle", "[passthrough][dir]") {
  TestFs t;
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  CHECK(run_io(t.fs->fsyncdir(t.ctx, root, d->fh, false)).ok());
  CHECK(run_io(t.fs->fsyncdir(t.ctx, root, d->fh, true)).ok());
  CHECK(err(run_io(t.fs->fsyncdir(t.ctx, root, 999, false))) == EBADF);
  CHECK(t.releasedir(root, d->fh).ok());
  t.host_write("late", "x");
  CHECK(t.names(root) == std::vector<std::string>{".", "..", "late"});
}

TEST_CASE("passthrough: 100000 entries are listed completely", "[passthrough][dir][large]") {
  TestFs t;
  constexpr int count = 100'000;
  // Made on the host directly (fast); a tenth carry a FIFO record, so the listing must read them.
  const std::string fifo = record_bytes(0, 0, S_IFIFO | 0644);
  for (int i = 0; i < count; ++i) {
    const std::string p = t.host("e" + std::to_string(i));
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    if (i % 10 == 0) {
      REQUIRE(::fsetxattr(fd, t.config.stat_xattr.c_str(), fifo.data(), fifo.size(), 0) == 0);
    }
    ::close(fd);
  }
  const auto start = std::chrono::steady_clock::now();
  Result<OpenReply> d = t.opendir(root);
  REQUIRE(d.ok());
  std::vector<bool> seen(count, false);
  size_t listed = 0;
  size_t fifos = 0;
  uint64_t off = 0;
  for (;;) {
    // About what a 4 KiB kernel buffer holds.
    CollectSink sink(128);
    Status st = run_io(t.fs->readdir(t.ctx, root, d->fh, off, sink));
    REQUIRE(st.ok());
    if (sink.entries.empty()) break;
    for (const ListedEntry& e : sink.entries) {
      if (e.name == "." || e.name == "..") continue;
      const int i = std::stoi(e.name.substr(1));
      REQUIRE(!seen[i]);
      seen[i] = true;
      ++listed;
      if (e.dtype == DT_FIFO) ++fifos;
      REQUIRE(e.dtype == (i % 10 == 0 ? DT_FIFO : DT_REG));
    }
    off = sink.entries.back().next_offset;
  }
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(listed == count);
  CHECK(fifos == count / 10);
  CHECK(t.releasedir(root, d->fh).ok());
  WARN("listed " << count << " entries in "
                 << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
}
