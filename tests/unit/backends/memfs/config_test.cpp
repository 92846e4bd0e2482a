// Construction, negotiation, cache policy mapping and statfs.
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

using namespace std::chrono_literals;

TEST_CASE("memfs: default root is an empty 0755 directory owned by root", "[memfs][config]") {
  TestFs t;
  Attr a = t.attr(root);
  CHECK(a.ino == root);
  CHECK(a.mode == (S_IFDIR | 0755));
  CHECK(a.uid == 0);
  CHECK(a.gid == 0);
  CHECK(a.nlink == 2);
  CHECK(a.blksize == 4096);
  CHECK(t.fs->used_inodes() == 1);
  CHECK(t.fs->used_bytes() == 0);
  CHECK(t.names(root) == std::vector<std::string>{".", ".."});
}

TEST_CASE("memfs: root owner and mode come from the config", "[memfs][config]") {
  MemFsConfig cfg;
  cfg.root_uid = 1000;
  cfg.root_gid = 100;
  cfg.root_mode = 01777;
  TestFs t(cfg);
  Attr a = t.attr(root);
  CHECK(a.mode == (S_IFDIR | 01777));
  CHECK(a.uid == 1000);
  CHECK(a.gid == 100);
}

TEST_CASE("memfs: capabilities", "[memfs][config]") {
  SECTION("defaults") {
    TestFs t;
    Capabilities caps = t.fs->capabilities();
    CHECK_FALSE(caps.writeback_cache);
    CHECK(caps.readdirplus);
    CHECK(caps.atomic_o_trunc);
    CHECK(caps.handle_killpriv_v2);
    CHECK(caps.cache_symlinks);
    CHECK_FALSE(caps.export_support);
  }
  SECTION("writeback only when configured") {
    MemFsConfig cfg;
    cfg.writeback = true;
    TestFs t(cfg);
    CHECK(t.fs->capabilities().writeback_cache);
  }
  SECTION("no symlink caching with policy never") {
    MemFsConfig cfg;
    cfg.cache = CachePolicy::never;
    TestFs t(cfg);
    CHECK_FALSE(t.fs->capabilities().cache_symlinks);
  }
}

struct PolicyCase {
  CachePolicy policy;
  uint32_t file_flags;
  uint32_t dir_flags;
  std::chrono::nanoseconds timeout;
};

TEST_CASE("memfs: cache policy maps to open flags and timeouts", "[memfs][config]") {
  const PolicyCase cases[] = {
      {CachePolicy::never, fuse::FOPEN_DIRECT_IO, fuse::FOPEN_DIRECT_IO, 0ns},
      {CachePolicy::auto_, 0, 0, 1s},
      {CachePolicy::always, fuse::FOPEN_KEEP_CACHE, fuse::FOPEN_CACHE_DIR, 1h},
  };
  for (const PolicyCase& pc : cases) {
    CAPTURE(to_string(pc.policy));
    MemFsConfig cfg;
    cfg.cache = pc.policy;
    TestFs t(cfg);
    Result<CreateReply> c = t.create(root, "f");
    REQUIRE(c.ok());
    CHECK(c->open.open_flags == pc.file_flags);
    CHECK(c->entry.entry_timeout == pc.timeout);
    CHECK(c->entry.attr_timeout == pc.timeout);
    Result<OpenReply> o = t.open(c->entry.ino);
    REQUIRE(o.ok());
    CHECK(o->open_flags == pc.file_flags);
    Result<OpenReply> d = t.opendir(root);
    REQUIRE(d.ok());
    CHECK(d->open_flags == pc.dir_flags);
    Result<AttrReply> a = t.getattr(c->entry.ino);
    REQUIRE(a.ok());
    CHECK(a->attr_timeout == pc.timeout);
    Result<Entry> l = t.lookup(root, "f");
    REQUIRE(l.ok());
    CHECK(l->entry_timeout == pc.timeout);
  }
}

TEST_CASE("memfs: default policy is always", "[memfs][config]") {
  CHECK(MemFsConfig{}.cache == CachePolicy::always);
  TestFs t;
  Result<Entry> e = t.mkdir(root, "d");
  REQUIRE(e.ok());
  CHECK(e->entry_timeout == 1h);
}

TEST_CASE("memfs: timeout overrides", "[memfs][config]") {
  MemFsConfig cfg;
  cfg.cache = CachePolicy::never;
  cfg.entry_timeout = 7s;
  cfg.attr_timeout = 3s;
  TestFs t(cfg);
  Result<Entry> e = t.mkdir(root, "d");
  REQUIRE(e.ok());
  CHECK(e->entry_timeout == 7s);
  CHECK(e->attr_timeout == 3s);
  Result<AttrReply> a = t.getattr(e->ino);
  REQUIRE(a.ok());
  CHECK(a->attr_timeout == 3s);
}

TEST_CASE("memfs: negative lookups are cached only with a non-zero entry timeout",
          "[memfs][config]") {
  SECTION("always: negative entry") {
    TestFs t;
    Result<Entry> e = t.lookup(root, "missing");
    REQUIRE(e.ok());
    CHECK(e->ino == 0);
    CHECK(e->entry_timeout == 1h);
  }
  SECTION("never: ENOENT") {
    MemFsConfig cfg;
    cfg.cache = CachePolicy::never;
    TestFs t(cfg);
    Result<Entry> e = t.lookup(root, "missing");
    REQUIRE_FALSE(e.ok());
    CHECK(e.error() == ENOENT);
  }
  SECTION("zero override: ENOENT") {
    MemFsConfig cfg;
    cfg.entry_timeout = 0ns;
    TestFs t(cfg);
    CHECK(t.lookup(root, "missing").error() == ENOENT);
  }
}

TEST_CASE("memfs: statfs without limits", "[memfs][config][statfs]") {
  TestFs t;
  Result<StatFs> st = t.statfs();
  REQUIRE(st.ok());
  CHECK(st->bsize == 4096);
  CHECK(st->frsize == 4096);
  CHECK(st->blocks == unlimited_capacity / 4096);
  CHECK(st->bfree == st->blocks);
  CHECK(st->bavail == st->blocks);
  CHECK(st->files == unlimited_inodes);
  CHECK(st->ffree == unlimited_inodes - 1);
  CHECK(st->namelen == 255);
}

TEST_CASE("memfs: statfs reflects capacity and inode use", "[memfs][config][statfs]") {
  MemFsConfig cfg;
  cfg.capacity_bytes = 1 << 20;
  cfg.max_inodes = 10;
  TestFs t(cfg);
  Result<StatFs> before = t.statfs();
  REQUIRE(before.ok());
  CHECK(before->blocks == 256);
  CHECK(before->bfree == 256);
  CHECK(before->files == 10);
  CHECK(before->ffree == 9);

  t.file_with(root, "f", std::string(4096, 'x'));
  Result<StatFs> after = t.statfs();
  REQUIRE(after.ok());
  CHECK(after->bfree == 255);
  CHECK(after->bavail == 255);
  CHECK(after->ffree == 8);
  CHECK(t.fs->used_bytes() == 4096);
  CHECK(t.fs->used_inodes() == 2);
}

TEST_CASE("memfs: statfs of an unknown inode is EBADF", "[memfs][config][statfs]") {
  TestFs t;
  CHECK(run_coro(t.fs->statfs(t.ctx, 999)).error() == EBADF);
}

TEST_CASE("memfs: check_name", "[memfs][config]") {
  CHECK(check_name("a") == 0);
  CHECK(check_name(std::string(255, 'n')) == 0);
  CHECK(check_name("") == EINVAL);
  CHECK(check_name(".") == EPERM);
  CHECK(check_name("..") == EPERM);
  CHECK(check_name("a/b") == EPERM);
  CHECK(check_name(std::string_view("a\0b", 3)) == EINVAL);
  CHECK(check_name(std::string(256, 'n')) == ENAMETOOLONG);
  CHECK(check_name("...") == 0);
}

}  // namespace
}  // namespace sandfs::memfs::testing
