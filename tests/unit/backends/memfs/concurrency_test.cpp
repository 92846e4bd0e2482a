// Many threads on one MemFs: no deadlock, no lost update, exact accounting.
//
// Each worker calls the coroutine interface through run_coro on its own io_context, as the
// Session does with one io_context per thread. A watchdog turns a deadlock into a failure.
// Catch2 assertions are not thread-safe, so workers record problems in a Problems list (and use
// only the fixture helpers that do not assert); the main thread checks it afterwards.
#include <stdio.h>  // RENAME_NOREPLACE

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

constexpr uint64_t page = 4096;

// Failed expectations from worker threads, by source line.
class Problems {
 public:
  void expect(bool ok, int line) {
    if (ok) return;
    std::lock_guard lock(mu_);
    lines_.push_back(line);
  }
  std::vector<int> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<int> lines_;
};

void check_none(const Problems& p) {
  const std::vector<int> lines = p.lines();
  INFO("first failed expectation at line " << (lines.empty() ? 0 : lines.front()));
  CHECK(lines.empty());
}

// Runs every job on its own thread, all released at once so they really overlap, and waits. A
// job still running after the deadline means a deadlock, which is reported and ends the test
// binary (the stuck threads cannot be joined).
void run_parallel(const std::vector<std::function<void()>>& jobs,
                  std::chrono::seconds limit = std::chrono::seconds(60)) {
  std::atomic<size_t> arrived{0};
  std::vector<std::future<void>> running;
  for (const auto& job : jobs) {
    running.push_back(std::async(std::launch::async, [&arrived, &job, n = jobs.size()] {
      ++arrived;
      while (arrived.load() < n)
        std::this_thread::yield();
      job();
    }));
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (auto& f : running) {
    if (f.wait_until(deadline) != std::future_status::ready) {
      FAIL_CHECK("workers did not finish: deadlock");
      std::fflush(nullptr);
      std::abort();
    }
  }
  for (auto& f : running)
    f.get();
}

// Sums what the live tree should be charged for: allocated pages of every reachable file.
uint64_t charged_pages_bytes(TestFs& t, InodeId dir, std::set<InodeId>& seen) {
  uint64_t bytes = 0;
  for (const ListedEntry& e : t.list(dir)) {
    if (e.name == "." || e.name == ".." || !seen.insert(e.ino).second) continue;
    Attr a = t.attr(e.ino);
    if (S_ISREG(a.mode)) bytes += a.blocks * 512;
    if (S_ISDIR(a.mode)) bytes += charged_pages_bytes(t, e.ino, seen);
  }
  return bytes;
}

// The reference MemFs took data-then-meta locks in write and meta-then-data in setattr. With one
// lock per node that inversion cannot exist; this hammers exactly that pair, and more, on one
// file and its directory.
TEST_CASE(
    "memfs: regression: concurrent write / truncate / fallocate and O_TRUNC on one file "
    "do not deadlock",
    "[memfs][concurrency]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 256 * page;
  TestFs t(cfg);
  Entry dir = t.mkdir_ok(root, "d");
  Entry f = t.file(dir.ino, "hot");
  constexpr int rounds = 1000;
  Problems p;

  std::vector<std::function<void()>> jobs;
  for (int w = 0; w < 3; ++w) {
    jobs.push_back([&, w] {
      std::mt19937 rng(w);
      Result<OpenReply> h = t.open(f.ino, O_RDWR);
      p.expect(h.ok(), __LINE__);
      if (!h) return;
      const std::string chunk(3 * page, static_cast<char>('a' + w));
      for (int i = 0; i < rounds; ++i) {
        const uint64_t off = rng() % (64 * page);
        Result<size_t> r = t.write(f.ino, h->fh, off, chunk, i % 7 == 0);
        p.expect(r.ok() || r.error() == ENOSPC, __LINE__);
        p.expect(t.read(f.ino, h->fh, off, 100).ok(), __LINE__);
      }
      p.expect(t.release(f.ino, h->fh).ok(), __LINE__);
    });
  }
  jobs.push_back([&] {
    std::mt19937 rng(100);
    for (int i = 0; i < rounds; ++i) {
      SetAttrIn in;
      in.valid = fuse::FATTR_SIZE | fuse::FATTR_MTIME | fuse::FATTR_MTIME_NOW |
                 (i % 3 == 0 ? fuse::FATTR_KILL_SUIDGID : 0);
      in.size = rng() % (80 * page);
      p.expect(t.setattr(f.ino, in).ok(), __LINE__);
      SetAttrIn mode;
      mode.valid = fuse::FATTR_MODE;
      mode.mode = 06755;
      p.expect(t.setattr(f.ino, mode).ok(), __LINE__);
    }
  });
  jobs.push_back([&] {
    std::mt19937 rng(200);
    Result<OpenReply> h = t.open(f.ino, O_RDWR);
    p.expect(h.ok(), __LINE__);
    if (!h) return;
    for (int i = 0; i < rounds; ++i) {
      const uint64_t off = rng() % (64 * page);
      const uint32_t mode =
          i % 2 == 0 ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_KEEP_SIZE;
      Status s = t.fallocate(f.ino, h->fh, off, 5 * page, mode);
      p.expect(s.ok() || s.error() == ENOSPC, __LINE__);
      Result<uint64_t> d = t.lseek(f.ino, h->fh, 0, SEEK_DATA);
      p.expect(d.ok() || d.error() == ENXIO, __LINE__);
    }
    p.expect(t.release(f.ino, h->fh).ok(), __LINE__);
  });
  jobs.push_back([&] {
    for (int i = 0; i < rounds / 4; ++i) {
      Result<OpenReply> h = t.open(f.ino, O_RDWR | O_TRUNC, true);
      p.expect(h.ok(), __LINE__);
      if (h) p.expect(t.release(f.ino, h->fh).ok(), __LINE__);
      p.expect(t.setxattr(f.ino, "user.n", std::to_string(i)).ok(), __LINE__);
      p.expect(t.getattr(f.ino).ok(), __LINE__);
    }
  });
  // Namespace traffic in the same directory, including lookups of the hot file.
  for (int w = 0; w < 2; ++w) {
    jobs.push_back([&, w] {
      for (int i = 0; i < rounds; ++i) {
        const std::string name = "n" + std::to_string(w) + "-" + std::to_string(i % 10);
        Result<CreateReply> c = t.create(dir.ino, name);
        if (c.ok()) {
          Result<size_t> r = t.write(c->entry.ino, c->open.fh, 0, "x");
          p.expect(r.ok() || r.error() == ENOSPC, __LINE__);
          p.expect(t.release(c->entry.ino, c->open.fh).ok(), __LINE__);
          t.fs->forget(c->entry.ino, 1);
        }
        (void)t.rename(dir.ino, name, dir.ino, name + "r", 0);
        (void)t.unlink(dir.ino, name + "r");
        Result<Entry> hot = t.lookup(dir.ino, "hot");
        p.expect(hot.ok() && hot->ino == f.ino, __LINE__);
        if (hot.ok()) t.fs->forget(f.ino, 1);
      }
    });
  }
  jobs.push_back([&] {
    for (int i = 0; i < rounds / 4; ++i) {
      Result<OpenReply> h = t.opendir(dir.ino);
      p.expect(h.ok(), __LINE__);
      if (!h) return;
      CollectPlusSink sink;
      p.expect(run_coro(t.fs->readdirplus(t.ctx, dir.ino, h->fh, 0, sink)).ok(), __LINE__);
      for (const ListedPlus& e : sink.entries) {
        if (e.name != "." && e.name != "..") t.fs->forget(e.entry.ino, 1);
      }
      p.expect(run_coro(t.fs->releasedir(t.ctx, dir.ino, h->fh)).ok(), __LINE__);
    }
  });
  run_parallel(jobs);
  check_none(p);

  // Accounting is exact: pages of the reachable files plus the one xattr, nothing leaked.
  std::set<InodeId> seen;
  const uint64_t pages_bytes = charged_pages_bytes(t, root, seen);
  const uint64_t xattr_bytes = 6 + t.getxattr(f.ino, "user.n", 0)->size;
  CHECK(t.fs->used_bytes() == pages_bytes + xattr_bytes);
  CHECK(t.fs->used_inodes() == 1 + seen.size());
  CHECK(t.fs->used_bytes() <= 256 * page);
}

TEST_CASE("memfs: concurrent disjoint writes to one file all land", "[memfs][concurrency]") {
  TestFs t;
  Entry f = t.file(root, "f");
  constexpr int writers = 8;
  constexpr size_t span = 100;
  Problems p;
  std::vector<std::function<void()>> jobs;
  for (int w = 0; w < writers; ++w) {
    jobs.push_back([&, w] {
      Result<OpenReply> h = t.open(f.ino, O_WRONLY);
      p.expect(h.ok(), __LINE__);
      if (!h) return;
      const std::string data(span, static_cast<char>('A' + w));
      for (int i = 0; i < 200; ++i)
        p.expect(t.write(f.ino, h->fh, w * span, data).ok(), __LINE__);
      p.expect(t.release(f.ino, h->fh).ok(), __LINE__);
    });
  }
  run_parallel(jobs);
  check_none(p);
  std::string expected;
  for (int w = 0; w < writers; ++w)
    expected += std::string(span, static_cast<char>('A' + w));
  CHECK(t.contents(f.ino) == expected);
  CHECK(t.fs->used_bytes() == page);
}

TEST_CASE("memfs: concurrent creates in one directory", "[memfs][concurrency]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  constexpr int threads = 4;
  constexpr int each = 300;
  Problems p;
  std::atomic<int> shared_wins{0};
  std::vector<std::function<void()>> jobs;
  for (int w = 0; w < threads; ++w) {
    jobs.push_back([&, w] {
      for (int i = 0; i < each; ++i) {
        const std::string name = "t" + std::to_string(w) + "-" + std::to_string(i);
        if (i % 3 == 0) {
          p.expect(t.mkdir(d.ino, name).ok(), __LINE__);
        } else {
          Result<CreateReply> c = t.create(d.ino, name, 0644, O_RDWR | O_CREAT | O_EXCL);
          p.expect(c.ok(), __LINE__);
          if (c) p.expect(t.release(c->entry.ino, c->open.fh).ok(), __LINE__);
        }
        // Everyone also races for one shared name per round: exactly one wins.
        Result<Entry> s = t.mknod(d.ino, "shared-" + std::to_string(i), S_IFREG | 0644);
        p.expect(s.ok() || s.error() == EEXIST, __LINE__);
        if (s.ok()) ++shared_wins;
      }
    });
  }
  run_parallel(jobs);
  check_none(p);
  CHECK(shared_wins.load() == each);
  std::vector<ListedEntry> all = t.list(d.ino);
  CHECK(all.size() == 2 + threads * each + each);
  std::set<InodeId> inos;
  for (const ListedEntry& e : all)
    inos.insert(e.ino);
  CHECK(inos.size() == all.size());
  CHECK(t.attr(d.ino).nlink == 2 + threads * (each / 3));
  CHECK(t.fs->used_inodes() == 2 + threads * each + each);
}

TEST_CASE("memfs: readdir during creates sees every stable entry exactly once",
          "[memfs][concurrency]") {
  TestFs t;
  Entry d = t.mkdir_ok(root, "d");
  for (int i = 0; i < 200; ++i)
    t.file(d.ino, "stable" + std::to_string(i));
  std::atomic<bool> stop{false};
  Problems p;
  std::vector<std::function<void()>> jobs;
  jobs.push_back([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string name = "churn" + std::to_string(i % 50);
      Result<Entry> e = t.mknod(d.ino, name, S_IFREG | 0644);
      if (e.ok()) t.fs->forget(e->ino, 1);
      (void)t.unlink(d.ino, name);
    }
  });
  jobs.push_back([&] {
    for (int round = 0; round < 50; ++round) {
      Result<OpenReply> h = t.opendir(d.ino);
      p.expect(h.ok(), __LINE__);
      if (!h) break;
      std::map<std::string, int> seen;
      uint64_t offset = 0;
      for (;;) {
        CollectSink sink(7);
        p.expect(run_coro(t.fs->readdir(t.ctx, d.ino, h->fh, offset, sink)).ok(), __LINE__);
        if (sink.entries.empty()) break;
        for (const ListedEntry& e : sink.entries)
          ++seen[e.name];
        offset = sink.entries.back().next_offset;
      }
      p.expect(run_coro(t.fs->releasedir(t.ctx, d.ino, h->fh)).ok(), __LINE__);
      for (int i = 0; i < 200; ++i)
        p.expect(seen["stable" + std::to_string(i)] == 1, __LINE__);
      for (const auto& kv : seen)
        p.expect(kv.second == 1, __LINE__);
    }
    stop = true;
  });
  run_parallel(jobs);
  check_none(p);
}

TEST_CASE("memfs: concurrent lookups and forgets never lose a linked file",
          "[memfs][concurrency]") {
  TestFs t;
  Entry f = t.file(root, "f");
  Problems p;
  std::vector<std::function<void()>> jobs;
  for (int w = 0; w < 4; ++w) {
    jobs.push_back([&] {
      for (int i = 0; i < 2000; ++i) {
        Result<Entry> e = t.lookup(root, "f");
        p.expect(e.ok() && e->ino == f.ino, __LINE__);
        t.fs->forget(f.ino, 1);
      }
    });
  }
  run_parallel(jobs);
  check_none(p);
  CHECK(t.getattr(f.ino).ok());
}

TEST_CASE("memfs: racing writers never overshoot the capacity", "[memfs][concurrency]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 64 * page;
  TestFs t(cfg);
  constexpr int writers = 8;
  std::atomic<uint64_t> written_pages{0};
  Problems p;
  std::vector<std::function<void()>> jobs;
  for (int w = 0; w < writers; ++w) {
    jobs.push_back([&, w] {
      Result<CreateReply> c = t.create(root, "f" + std::to_string(w));
      p.expect(c.ok(), __LINE__);
      if (!c) return;
      for (int i = 0; i < 16; ++i) {
        Result<size_t> r = t.write(c->entry.ino, c->open.fh, i * page, std::string(page, 'x'));
        if (r.ok()) ++written_pages;
        p.expect(r.ok() || r.error() == ENOSPC, __LINE__);
        p.expect(t.fs->used_bytes() <= 64 * page, __LINE__);
      }
      p.expect(t.release(c->entry.ino, c->open.fh).ok(), __LINE__);
    });
  }
  run_parallel(jobs);
  check_none(p);
  CHECK(written_pages.load() == 64);
  CHECK(t.fs->used_bytes() == 64 * page);
}

TEST_CASE("memfs: concurrent cross-directory renames keep the tree consistent",
          "[memfs][concurrency]") {
  TestFs t;
  // Four directories that threads keep moving into each other and back; many moves are refused
  // (into a subtree, onto an occupied name, source not there), none may deadlock or corrupt.
  std::vector<InodeId> dirs;
  for (const char* name : {"a", "b", "c", "d"})
    dirs.push_back(t.mkdir_ok(root, name).ino);
  for (InodeId d : dirs)
    t.file(d, "payload");
  Problems p;
  std::vector<std::function<void()>> jobs;
  for (int w = 0; w < 4; ++w) {
    jobs.push_back([&, w] {
      std::mt19937 rng(w + 7);
      const std::vector<std::string> names = {"a", "b", "c", "d"};
      std::vector<InodeId> parents = {root};
      parents.insert(parents.end(), dirs.begin(), dirs.end());
      for (int i = 0; i < 1500; ++i) {
        const std::string& name = names[rng() % names.size()];
        const InodeId from = parents[rng() % parents.size()];
        const InodeId to = parents[rng() % parents.size()];
        Status s = t.rename(from, name, to, name, i % 2 == 0 ? RENAME_NOREPLACE : 0);
        p.expect(s.ok() || s.error() == ENOENT || s.error() == EINVAL || s.error() == EEXIST ||
                     s.error() == ENOTEMPTY,
                 __LINE__);
      }
    });
  }
  // Lookups, listings and rmdir attempts while the directories move about.
  std::vector<InodeId> parents = {root};
  parents.insert(parents.end(), dirs.begin(), dirs.end());
  jobs.push_back([&] {
    std::mt19937 rng(99);
    for (int i = 0; i < 3000; ++i) {
      const InodeId dir = parents[rng() % parents.size()];
      Result<Entry> e = t.lookup(dir, std::string(1, static_cast<char>('a' + rng() % 4)));
      p.expect(e.ok(), __LINE__);
      if (e.ok() && e->ino != 0) t.fs->forget(e->ino, 1);
      Status rm = t.rmdir(dir, std::string(1, static_cast<char>('a' + rng() % 4)));
      p.expect(!rm.ok() && (rm.error() == ENOENT || rm.error() == ENOTEMPTY), __LINE__);
    }
  });
  jobs.push_back([&] {
    std::mt19937 rng(98);
    for (int i = 0; i < 500; ++i) {
      const InodeId dir = parents[rng() % parents.size()];
      Result<OpenReply> h = t.opendir(dir);
      p.expect(h.ok(), __LINE__);
      if (!h) continue;
      CollectPlusSink sink(2 + rng() % 4);
      p.expect(run_coro(t.fs->readdirplus(t.ctx, dir, h->fh, 0, sink)).ok(), __LINE__);
      for (const ListedPlus& e : sink.entries) {
        if (e.name != "." && e.name != "..") t.fs->forget(e.entry.ino, 1);
      }
      p.expect(run_coro(t.fs->releasedir(t.ctx, dir, h->fh)).ok(), __LINE__);
    }
  });
  run_parallel(jobs);
  check_none(p);

  // Every directory is reachable from the root exactly once, and link counts add up.
  std::set<InodeId> found;
  std::function<void(InodeId)> walk = [&](InodeId dir) {
    uint32_t subdirs = 0;
    for (const ListedEntry& e : t.list(dir)) {
      if (e.name == "." || e.name == ".." || e.dtype != DT_DIR) continue;
      ++subdirs;
      CHECK(found.insert(e.ino).second);
      walk(e.ino);
    }
    CHECK(t.attr(dir).nlink == 2 + subdirs);
  };
  walk(root);
  CHECK(found == std::set<InodeId>(dirs.begin(), dirs.end()));
  for (InodeId d : dirs)
    CHECK(t.lookup(d, "payload").ok());
  CHECK(t.fs->used_inodes() == 1 + 2 * dirs.size());
}

}  // namespace
}  // namespace sandfs::memfs::testing
