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
