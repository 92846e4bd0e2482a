// Helpers for the DualFs unit tests: a DualFs over two MemFs (each behind a CountingFs), direct
// access to either backend to arrange and inspect what it holds, and path-based synchronous
// wrappers around the DualFs coroutine interface.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/dualfs/dualfs.hpp"
#include "backends/memfs/memfs.hpp"
#include "core/protocol/fuse_kernel.hpp"
#include "support/ring_runner.hpp"
#include "unit/backends/dualfs/counting_fs.hpp"

namespace sandfs::dualfs::testing {

// Every call runs on this thread's io_context with an io ring, so a PassthroughFs A works too.
template <class T>
T run_coro(boost::asio::awaitable<T> task) {
  return sandfs::test::run_io(std::move(task));
}

inline constexpr InodeId root = fuse::root_id;

struct Listed {
  std::string name;
  InodeId ino = 0;
  uint32_t dtype = 0;
  uint64_t next_offset = 0;
};

class ListSink : public DirSink {
 public:
  explicit ListSink(size_t room = std::numeric_limits<size_t>::max()) : room_(room) {}
  bool add(std::string_view name, InodeId ino, uint32_t dtype, uint64_t next_offset) override {
    if (entries.size() >= room_) return false;
    entries.push_back({std::string(name), ino, dtype, next_offset});
    return true;
  }
  std::vector<Listed> entries;

 private:
  size_t room_;
};

struct ListedPlus {
  std::string name;
  Entry entry;
  uint32_t dtype = 0;
};

class PlusSink : public DirPlusSink {
 public:
  explicit PlusSink(size_t room = std::numeric_limits<size_t>::max()) : room_(room) {}
  bool add(std::string_view name, const Entry& e, uint32_t dtype, uint64_t) override {
    if (entries.size() >= room_) return false;
    entries.push_back({std::string(name), e, dtype});
    return true;
  }
  std::vector<ListedPlus> entries;

 private:
  size_t room_;
};

// (parent path, leaf) of "x/y/z".
inline std::pair<std::string, std::string> split(std::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(path)};
  return {std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
}

inline std::vector<std::string> components(std::string_view path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) out.emplace_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

// Direct access to one backend (no DualFs), for arranging and inspecting its content.
struct Backend {
  std::shared_ptr<Filesystem> fs;
  RequestContext ctx;

  // The inode at `path` ("" is the root), or 0.
  InodeId walk(std::string_view path) {
    InodeId at = root;
    for (const std::string& c : components(path)) {
      Result<Entry> e = run_coro(fs->lookup(ctx, at, c));
      if (!e || e->ino == 0) return 0;
      at = e->ino;
    }
    return at;
  }
  bool exists(std::string_view path) { return walk(path) != 0; }
  InodeId mkdirs(std::string_view path, uint32_t mode = 0755) {
    InodeId at = root;
    for (const std::string& c : components(path)) {
      Result<Entry> e = run_coro(fs->lookup(ctx, at, c));
      if (e && e->ino != 0) {
        at = e->ino;
        continue;
      }
      Result<Entry> made = run_coro(fs->mkdir(ctx, at, c, mode, 0));
      REQUIRE(made.ok());
      at = made->ino;
    }
    return at;
  }
  InodeId put(std::string_view path, std::string_view content, uint32_t mode = 0644) {
    auto [dir, leaf] = split(path);
    const InodeId parent = mkdirs(dir);
    Result<CreateReply> c =
        run_coro(fs->create(ctx, parent, leaf, mode, O_RDWR | O_CREAT, 0, false));
    REQUIRE(c.ok());
    std::string copy(content);
    iovec iov{copy.data(), copy.size()};
    IoVecs src{std::span<const iovec>(&iov, 1), copy.size()};
    if (!copy.empty()) {
      Result<size_t> w = run_coro(fs->write(ctx, c->entry.ino, c->open.fh, 0, src, false));
      REQUIRE(w.ok());
    }
    REQUIRE(run_coro(fs->release(ctx, c->entry.ino, c->open.fh, 0)).ok());
    return c->entry.ino;
  }
  std::optional<std::string> content(std::string_view path) {
    const InodeId ino = walk(path);
    if (ino == 0) return std::nullopt;
    Result<AttrReply> a = run_coro(fs->getattr(ctx, ino, std::nullopt));
    REQUIRE(a.ok());
    Result<OpenReply> o = run_coro(fs->open(ctx, ino, O_RDONLY, false));
    REQUIRE(o.ok());
    std::string buf(a->attr.size, '\0');
    iovec iov{buf.data(), buf.size()};
    IoVecs dst{std::span<const iovec>(&iov, 1), buf.size()};
    Result<size_t> n =
        run_coro(fs->read(ctx, ino, o->fh, 0, static_cast<uint32_t>(buf.size()), dst));
    REQUIRE(n.ok());
    buf.resize(*n);
    REQUIRE(run_coro(fs->release(ctx, ino, o->fh, 0)).ok());
    return buf;
  }
  Attr attr(std::string_view path) {
    const InodeId ino = walk(path);
    REQUIRE(ino != 0);
    Result<AttrReply> a = run_coro(fs->getattr(ctx, ino, std::nullopt));
    REQUIRE(a.ok());
    return a->attr;
  }
};

struct DualFixture {
  explicit DualFixture(std::shared_ptr<const Policy> policy = read_b_write_a_policy(),
                       size_t chunk = size_t{1} << 20,
                       std::shared_ptr<Filesystem> a_backend = nullptr,
                       WhiteoutStorage storage = WhiteoutStorage::memory,
                       std::shared_ptr<Filesystem> b_backend = nullptr,
                       size_t host_chunk = size_t{8} << 20) {
    memfs::MemFsConfig mc;
    mc.cache = CachePolicy::never;
    a_inner = a_backend ? a_backend : memfs::make_memfs(mc);
    b_inner = b_backend ? b_backend : memfs::make_memfs(mc);
    a = std::make_shared<CountingFs>(a_inner);
    b = std::make_shared<CountingFs>(b_inner);
    DualFsConfig config;
    config.a = a;
    config.b = b;
    config.policy = std::move(policy);
    config.cache = CachePolicy::never;
    config.copy_chunk = chunk;
    config.host_copy_chunk = host_chunk;
    config.whiteouts = storage;
    fs = make_dualfs(config);
    REQUIRE(run_coro(fs->init(SessionParams{})).ok());
    A = Backend{a_inner, {}};
    B = Backend{b_inner, {}};
  }

  // ---- through DualFs ----
  Result<Entry> lookup(std::string_view path) {
    InodeId at = root;
    Result<Entry> last = Errno{ENOENT};
    Entry root_entry;
    root_entry.ino = root;
    last = root_entry;
    for (const std::string& c : components(path)) {
      last = run_coro(fs->lookup(ctx, at, c));
      if (!last) return last;
      if (last->ino == 0) return Errno{ENOENT};
      at = last->ino;
    }
    return last;
  }
  InodeId ino(std::string_view path) {
    Result<Entry> e = lookup(path);
    REQUIRE(e.ok());
    return e->ino;
  }
  InodeId parent_of(std::string_view path) { return ino(split(path).first); }

  Result<std::string> read(std::string_view path) {
    Result<Entry> e = lookup(path);
    if (!e) return Errno{e.error()};
    Result<OpenReply> o = run_coro(fs->open(ctx, e->ino, O_RDONLY, false));
    if (!o) return Errno{o.error()};
    Result<AttrReply> a = run_coro(fs->getattr(ctx, e->ino, std::nullopt));
    REQUIRE(a.ok());
    std::string buf(a->attr.size, '\0');
    iovec iov{buf.data(), buf.size()};
    IoVecs dst{std::span<const iovec>(&iov, 1), buf.size()};
    Result<size_t> n =
        run_coro(fs->read(ctx, e->ino, o->fh, 0, static_cast<uint32_t>(buf.size()), dst));
    REQUIRE(run_coro(fs->release(ctx, e->ino, o->fh, 0)).ok());
    if (!n) return Errno{n.error()};
    buf.resize(*n);
    return buf;
  }
  Status write(std::string_view path, std::string_view data, uint32_t flags = O_WRONLY,
               uint64_t offset = 0) {
    Result<Entry> e = lookup(path);
    if (!e) return Errno{e.error()};
    Result<OpenReply> o = run_coro(fs->open(ctx, e->ino, flags, false));
    if (!o) return Errno{o.error()};
    std::string copy(data);
    iovec iov{copy.data(), copy.size()};
    IoVecs src{std::span<const iovec>(&iov, 1), copy.size()};
    Result<size_t> n = copy.empty() ? Result<size_t>(size_t{0})
                                    : run_coro(fs->write(ctx, e->ino, o->fh, offset, src, false));
    REQUIRE(run_coro(fs->release(ctx, e->ino, o->fh, 0)).ok());
    if (!n) return Errno{n.error()};
    return ok_status();
  }
  Result<Entry> create(std::string_view path, std::string_view data = {}, uint32_t mode = 0644,
                       uint32_t flags = O_RDWR | O_CREAT | O_EXCL) {
    auto [dir, leaf] = split(path);
    Result<Entry> p = lookup(dir);
    if (!p) return p;
    Result<CreateReply> c = run_coro(fs->create(ctx, p->ino, leaf, mode, flags, 0, false));
    if (!c) return Errno{c.error()};
    std::string copy(data);
    iovec iov{copy.data(), copy.size()};
    IoVecs src{std::span<const iovec>(&iov, 1), copy.size()};
    if (!copy.empty()) {
      Result<size_t> w = run_coro(fs->write(ctx, c->entry.ino, c->open.fh, 0, src, false));
      REQUIRE(w.ok());
    }
    REQUIRE(run_coro(fs->release(ctx, c->entry.ino, c->open.fh, 0)).ok());
    return c->entry;
  }
  Result<Entry> mkdir(std::string_view path, uint32_t mode = 0755) {
    auto [dir, leaf] = split(path);
    Result<Entry> p = lookup(dir);
    if (!p) return p;
    return run_coro(fs->mkdir(ctx, p->ino, leaf, mode, 0));
  }
  Status unlink(std::string_view path) {
    auto [dir, leaf] = split(path);
    Result<Entry> p = lookup(dir);
    if (!p) return Errno{p.error()};
    return run_coro(fs->unlink(ctx, p->ino, leaf));
  }
  Status rmdir(std::string_view path) {
    auto [dir, leaf] = split(path);
    Result<Entry> p = lookup(dir);
    if (!p) return Errno{p.error()};
    return run_coro(fs->rmdir(ctx, p->ino, leaf));
  }
  Status rename(std::string_view from, std::string_view to, uint32_t flags = 0) {
    auto [fdir, fleaf] = split(from);
    auto [tdir, tleaf] = split(to);
    Result<Entry> p = lookup(fdir);
    if (!p) return Errno{p.error()};
    Result<Entry> q = lookup(tdir);
    if (!q) return Errno{q.error()};
    return run_coro(fs->rename(ctx, p->ino, fleaf, q->ino, tleaf, flags));
  }
  Result<AttrReply> setattr(std::string_view path, const SetAttrIn& in) {
    Result<Entry> e = lookup(path);
    if (!e) return Errno{e.error()};
    return run_coro(fs->setattr(ctx, e->ino, in));
  }
  Attr attr(std::string_view path) {
    Result<Entry> e = lookup(path);
    REQUIRE(e.ok());
    Result<AttrReply> a = run_coro(fs->getattr(ctx, e->ino, std::nullopt));
    REQUIRE(a.ok());
    return a->attr;
  }
  std::vector<Listed> list(std::string_view path) {
    const InodeId dir = ino(path);
    Result<OpenReply> d = run_coro(fs->opendir(ctx, dir, 0));
    REQUIRE(d.ok());
    ListSink sink;
    REQUIRE(run_coro(fs->readdir(ctx, dir, d->fh, 0, sink)).ok());
    REQUIRE(run_coro(fs->releasedir(ctx, dir, d->fh)).ok());
    return sink.entries;
  }
  // Sorted names without "." and "..".
  std::vector<std::string> names(std::string_view path) {
    std::vector<std::string> out;
    for (const Listed& e : list(path))
      if (e.name != "." && e.name != "..") out.push_back(e.name);
    std::sort(out.begin(), out.end());
    return out;
  }

  std::shared_ptr<Filesystem> a_inner, b_inner;
  std::shared_ptr<CountingFs> a, b;
  std::shared_ptr<DualFs> fs;
  Backend A, B;
  RequestContext ctx;
};

inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace sandfs::dualfs::testing
