// lookup, forget, getattr: identities, lookup counts, generations, re-walks.
#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

TEST_CASE("passthrough: lookup finds host files and directories", "[passthrough][lookup]") {
  TestFs t;
  t.host_write("f", "hello");
  t.host_mkdir("d");
  t.host_write("d/g", "x");

  Entry f = t.lookup_ok(root, "f");
  CHECK((f.attr.mode & S_IFMT) == S_IFREG);
  CHECK(f.attr.size == 5);
  CHECK(f.attr.ino == f.ino);
  Entry d = t.lookup_ok(root, "d");
  CHECK((d.attr.mode & S_IFMT) == S_IFDIR);
  Entry g = t.lookup_ok(d.ino, "g");
  CHECK(g.attr.size == 1);
  CHECK(g.ino != f.ino);
  CHECK(t.attr(root).mode == (S_IFDIR | (t.host_stat(".").st_mode & 07777)));
}

TEST_CASE("passthrough: a missing name is a negative entry or ENOENT", "[passthrough][lookup]") {
  TestFs cached;
  Result<Entry> e = cached.lookup(root, "nope");
  REQUIRE(e.ok());
  CHECK(e->ino == 0);
  CHECK(e->entry_timeout.count() > 0);

  TestFs uncached([](PassthroughConfig& c) { c.cache = CachePolicy::never; });
  CHECK(err(uncached.lookup(root, "nope")) == ENOENT);
}

TEST_CASE("passthrough: the guest's ids are the same in lookup getattr and readdir",
          "[passthrough][lookup]") {
  TestFs t;
  t.host_write("f", "x");
  Entry f = t.lookup_ok(root, "f");
  CHECK(t.attr(f.ino).ino == f.ino);
  bool seen = false;
  for (const ListedEntry& e : t.list(root)) {
    if (e.name == "f") {
      CHECK(e.ino == f.ino);
      seen = true;
    }
    if (e.name == "." || e.name == "..") CHECK(e.ino == root);
  }
  CHECK(seen);
}

TEST_CASE("passthrough: the same name twice is the same inode with two lookups",
          "[passthrough][lookup]") {
  TestFs t;
  t.host_write("f", "x");
  t.host_write("g", "y");
  Entry a = t.lookup_ok(root, "f");
  Entry b = t.lookup_ok(root, "f");
  CHECK(a.ino == b.ino);
  CHECK(a.generation == b.generation);
  CHECK(t.fs->lookup_count(a.ino) == 2);
  CHECK(t.lookup_ok(root, "g").ino != a.ino);
  t.forget(a.ino, 1);
  CHECK(t.fs->lookup_count(a.ino) == 1);
  CHECK(t.attr(a.ino).size == 1);
  t.forget(a.ino, 1);
  CHECK(t.fs->lookup_count(a.ino) == 0);
  CHECK(err(t.getattr(a.ino)) == EBADF);
}

TEST_CASE("passthrough: forget clamps at zero and ignores the root and unknown ids",
          "[passthrough][lookup]") {
  TestFs t;
  t.host_write("f", "x");
  Entry f = t.lookup_ok(root, "f");
  t.forget(f.ino, 1000);
  CHECK(err(t.getattr(f.ino)) == EBADF);
  t.forget(root, 1000);
  t.forget(123456789, 5);
  CHECK(t.attr(root).ino == root);
  Entry again = t.lookup_ok(root, "f");
  CHECK(again.ino == f.ino);                // ids come from the host identity
  CHECK(again.generation != f.generation);  // but it is a new entry
}

TEST_CASE("passthrough: hard links share one inode", "[passthrough][lookup]") {
  TestFs t;
  t.host_write("a", "shared");
  t.host_mkdir("d");
  REQUIRE(::link(t.host("a").c_str(), t.host("d/b").c_str()) == 0);
  Entry a = t.lookup_ok(root, "a");
  Entry d = t.lookup_ok(root, "d");
  Entry b = t.lookup_ok(d.ino, "b");
  CHECK(a.ino == b.ino);
  CHECK(b.attr.nlink == 2);
  CHECK(t.fs->lookup_count(a.ino) == 2);
}

TEST_CASE("passthrough: getattr of unknown inodes is EBADF", "[passthrough][lookup]") {
  TestFs t;
  CHECK(err(t.getattr(0)) == EBADF);
  CHECK(err(t.getattr(42)) == EBADF);
  CHECK(err(t.getattr(~uint64_t{0})) == EBADF);
  CHECK(err(t.lookup(42, "x")) == EBADF);
}

TEST_CASE("passthrough: lookup in a non-directory is ENOTDIR", "[passthrough][lookup]") {
  TestFs t;
  t.host_write("f", "x");
  Entry f = t.lookup_ok(root, "f");
  CHECK(err(t.lookup(f.ino, "x")) == ENOTDIR);
}

TEST_CASE("passthrough: a reused host inode number gets a new generation",
          "[passthrough][lookup]") {
  TestFs t;
  t.host_write("f", "old");
  Entry old = t.lookup_ok(root, "f");
  // ext4 and tmpfs hand a freed inode number out again soon; try until it happens.
  bool reused = false;
  for (int i = 0; i < 200 && !reused; ++i) {
    REQUIRE(::unlink(t.host("f").c_str()) == 0);
    t.host_write("f", "new");
    reused = t.host_stat("f").st_ino == static_cast<ino_t>(old.ino);
  }
  if (!reused) {
    WARN("the host filesystem did not reuse the inode number; nothing to check");
    return;
  }
  Entry fresh = t.lookup_ok(root, "f");
  CHECK(fresh.ino == old.ino);
  CHECK(fresh.generation != old.generation);
  CHECK(fresh.attr.size == 3);
  // The count moved with the id: both lookups are owed a forget.
  CHECK(t.fs->lookup_count(fresh.ino) == 2);
}

TEST_CASE("passthrough: a tiny fd cache still reaches every inode by re-walking",
          "[passthrough][lookup][fdcache]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 2; });
  std::vector<Entry> dirs;
  std::string path;
  InodeId at = root;
  for (int i = 0; i < 12; ++i) {
    Entry d = t.mkdir_ok(at, "d" + std::to_string(i));
    dirs.push_back(d);
    at = d.ino;
  }
  std::vector<Entry> files;
  for (int i = 0; i < 20; ++i)
    files.push_back(t.file_with(at, "f" + std::to_string(i), std::string(i + 1, 'x')));
  CHECK(t.fs->cached_fds() <= 2);
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < files.size(); ++i) {
      CHECK(t.attr(files[i].ino).size == i + 1);
      CHECK(t.contents(files[i].ino) == std::string(i + 1, 'x'));
    }
    for (const Entry& d : dirs)
      CHECK((t.attr(d.ino).mode & S_IFMT) == S_IFDIR);
  }
  CHECK(t.fs->cached_fds() <= 2);
}

TEST_CASE("passthrough: rename keeps identities and re-walks follow it",
          "[passthrough][lookup][fdcache]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 1; });
  Entry a = t.mkdir_ok(root, "a");
  Entry b = t.mkdir_ok(a.ino, "b");
  Entry f = t.file_with(b.ino, "f", "payload");
  Entry other = t.mkdir_ok(root, "other");
  REQUIRE(t.rename(root, "a", other.ino, "moved").ok());
  // Push everything out of the one-slot cache, then reach f through its new path.
  for (int i = 0; i < 3; ++i)
    t.file(root, "filler" + std::to_string(i));
  CHECK(t.attr(f.ino).size == 7);
  CHECK(t.contents(f.ino) == "payload");
  CHECK(t.lookup_ok(other.ino, "moved").ino == a.ino);
  CHECK(t.lookup_ok(b.ino, "f").ino == f.ino);
  CHECK(err(t.lookup(root, "a")) == 0);  // negative entry now
  CHECK(t.lookup(root, "a")->ino == 0);
}

TEST_CASE("passthrough: a host-side rename makes an uncached inode stale until looked up again",
          "[passthrough][lookup][fdcache]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 1; });
  t.host_mkdir("d");
  t.host_write("d/f", "x");
  Entry d = t.lookup_ok(root, "d");
  Entry f = t.lookup_ok(d.ino, "f");
  t.host_write("g", "y");
  t.lookup_ok(root, "g");  // evicts f's fd
  t.lookup_ok(root, "d");  // evicts g's fd
  REQUIRE(::rename(t.host("d/f").c_str(), t.host("d/f2").c_str()) == 0);
  // f's only known name is gone: ESTALE (the kernel retries the path walk on ESTALE).
  CHECK(err(t.getattr(f.ino)) == ESTALE);
  CHECK(t.lookup_ok(d.ino, "f2").ino == f.ino);
  CHECK(t.attr(f.ino).size == 1);
}
