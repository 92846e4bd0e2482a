// Several threads on one PassthroughFs, each with its own io_context and ring, as the server
// runs it.
#include <atomic>
#include <set>
#include <thread>

#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;

namespace {

template <class Fn>
void in_threads(int n, Fn fn) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] { fn(i); });
  for (std::thread& th : threads)
    th.join();
}

}  // namespace

TEST_CASE("passthrough: concurrent lookups of one name agree and all count",
          "[passthrough][concurrency]") {
  TestFs t;
  t.host_write("f", "x");
  std::vector<InodeId> ids(8);
  std::vector<uint64_t> gens(8);
  in_threads(8, [&](int i) {
    for (int k = 0; k < 50; ++k) {
      Result<Entry> e = run_io(t.fs->lookup(t.ctx, root, "f"));
      if (!e.ok()) throw std::runtime_error("lookup failed");
      ids[i] = e->ino;
      gens[i] = e->generation;
    }
  });
  CHECK(std::set<InodeId>(ids.begin(), ids.end()).size() == 1);
  CHECK(std::set<uint64_t>(gens.begin(), gens.end()).size() == 1);
  CHECK(t.fs->lookup_count(ids[0]) == 400);
}

TEST_CASE("passthrough: concurrent creates get distinct inodes", "[passthrough][concurrency]") {
  TestFs t;
  std::vector<InodeId> ids(8 * 20);
  in_threads(8, [&](int i) {
    for (int k = 0; k < 20; ++k) {
      const std::string name = "f" + std::to_string(i) + "_" + std::to_string(k);
      Result<CreateReply> c =
          run_io(t.fs->create(t.ctx, root, name, 0644, O_RDWR | O_CREAT, 0, false));
      if (!c.ok()) throw std::runtime_error("create failed");
      ids[i * 20 + k] = c->entry.ino;
      (void)run_io(t.fs->release(t.ctx, c->entry.ino, c->open.fh, 0));
    }
  });
  CHECK(std::set<InodeId>(ids.begin(), ids.end()).size() == ids.size());
  CHECK(t.names(root).size() == ids.size() + 2);
}

TEST_CASE("passthrough: racing lookups and forgets leave a consistent count",
          "[passthrough][concurrency]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 4; });
  for (int i = 0; i < 16; ++i)
    t.host_write("f" + std::to_string(i), std::to_string(i));
  in_threads(6, [&](int thread) {
    for (int k = 0; k < 300; ++k) {
      const std::string name = "f" + std::to_string((k + thread) % 16);
      Result<Entry> e = run_io(t.fs->lookup(t.ctx, root, name));
      if (!e.ok() || e->ino == 0) throw std::runtime_error("lookup failed");
      Result<AttrReply> a = run_io(t.fs->getattr(t.ctx, e->ino, std::nullopt));
      if (!a.ok() || a->attr.size != name.size() - 1) throw std::runtime_error("getattr failed");
      t.fs->forget(e->ino, 1);
    }
  });
  CHECK(t.fs->tracked_inodes() == 1);  // only the root is left
  CHECK(t.fs->cached_fds() <= 4);
  Entry f = t.lookup_ok(root, "f3");
  CHECK(t.contents(f.ino) == "3");
}

TEST_CASE("passthrough: concurrent writers and readers at disjoint offsets",
          "[passthrough][concurrency]") {
  TestFs t;
  Entry f = t.file(root, "f");
  in_threads(5, [&](int i) {
    Result<OpenReply> o = run_io(t.fs->open(t.ctx, f.ino, O_RDWR, false));
    if (!o.ok()) throw std::runtime_error("open failed");
    std::string block(100, static_cast<char>('a' + i));
    for (int k = 0; k < 20; ++k) {
      iovec v{block.data(), block.size()};
      IoVecs src{std::span<const iovec>(&v, 1), block.size()};
      Result<size_t> w = run_io(t.fs->write(t.ctx, f.ino, o->fh, i * 100, src, false));
      if (!w.ok() || *w != 100) throw std::runtime_error("write failed");
    }
    (void)run_io(t.fs->release(t.ctx, f.ino, o->fh, 0));
  });
  const std::string data = t.contents(f.ino);
  REQUIRE(data.size() == 500);
  for (int i = 0; i < 5; ++i)
    CHECK(data.substr(i * 100, 100) == std::string(100, static_cast<char>('a' + i)));
}

TEST_CASE("passthrough: listings racing creates and renames", "[passthrough][concurrency]") {
  TestFs t([](PassthroughConfig& c) { c.max_cached_fds = 8; });
  Entry d = t.mkdir_ok(root, "d");
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 300; ++i) {
      const std::string name = "n" + std::to_string(i);
      Result<Entry> e = run_io(t.fs->mknod(t.ctx, d.ino, name, S_IFREG | 0644, 0, 0));
      if (e.ok() && i % 3 == 0) {
        (void)run_io(t.fs->rename(t.ctx, d.ino, name, d.ino, name + "r", 0));
      }
    }
    done = true;
  });
  while (!done) {
    Result<OpenReply> h = run_io(t.fs->opendir(t.ctx, d.ino, 0));
    REQUIRE(h.ok());
    CollectPlusSink sink;
    REQUIRE(run_io(t.fs->readdirplus(t.ctx, d.ino, h->fh, 0, sink)).ok());
    for (const ListedPlus& e : sink.entries) {
      if (e.entry.ino != 0 && e.name != "." && e.name != "..") t.fs->forget(e.entry.ino, 1);
    }
    REQUIRE(run_io(t.fs->releasedir(t.ctx, d.ino, h->fh)).ok());
  }
  writer.join();
  CHECK(t.names(d.ino).size() == 302);
}
