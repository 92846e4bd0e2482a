// Start-up checks, capabilities, cache policies and timeouts.
#include "passthrough_fixture.hpp"

using namespace sandfs;
using namespace sandfs::passthrough;
using namespace sandfs::passthrough::testing;
using namespace std::chrono_literals;

TEST_CASE("passthrough: defaults", "[passthrough][config]") {
  PassthroughConfig c;
  CHECK(c.stat_virtualization == StatVirtualization::strict);
  CHECK(c.host_permissions == HostPermissions::private_);
  CHECK(!c.readonly);
  CHECK(!c.quota_bytes);
  CHECK(c.cache == CachePolicy::auto_);
  CHECK(!c.writeback);
  CHECK(!c.follow_root_symlinks);
  CHECK(c.stat_xattr == "user.sandfs.stat");
  CHECK(c.max_cached_fds == 4096);
}

TEST_CASE("passthrough: policy names parse and print", "[passthrough][config]") {
  StatVirtualization v{};
  for (std::string_view name : {"strict", "relaxed", "off"}) {
    REQUIRE(parse_stat_virtualization(name, v));
    CHECK(to_string(v) == name);
  }
  CHECK(!parse_stat_virtualization("Strict", v));
  HostPermissions p{};
  for (std::string_view name : {"private", "mirror"}) {
    REQUIRE(parse_host_permissions(name, p));
    CHECK(to_string(p) == name);
  }
  CHECK(!parse_host_permissions("public", p));
}

TEST_CASE("passthrough: capabilities are declared honestly", "[passthrough][config]") {
  TestFs t;
  Capabilities caps = t.fs->capabilities();
  CHECK(caps.readdirplus);
  CHECK(caps.handle_killpriv_v2);
  CHECK(caps.atomic_o_trunc);
  CHECK(!caps.writeback_cache);
  CHECK(caps.cache_symlinks);
  CHECK(!caps.posix_acl);
  CHECK(!caps.export_support);
  TestFs never([](PassthroughConfig& c) {
    c.cache = CachePolicy::never;
    c.writeback = true;
  });
  CHECK(!never.fs->capabilities().cache_symlinks);
  CHECK(never.fs->capabilities().writeback_cache);
}

TEST_CASE("passthrough: cache policies set open flags and timeouts", "[passthrough][config]") {
  struct Case {
    CachePolicy policy;
    uint32_t file_flags;
    uint32_t dir_flags;
    std::chrono::nanoseconds timeout;
  };
  for (const Case& c :
       {Case{CachePolicy::never, fuse::FOPEN_DIRECT_IO, fuse::FOPEN_DIRECT_IO, 0s},
        Case{CachePolicy::auto_, 0, 0, 1s},
        Case{CachePolicy::always, fuse::FOPEN_KEEP_CACHE, fuse::FOPEN_CACHE_DIR, 1h}}) {
    TestFs t([&](PassthroughConfig& cfg) { cfg.cache = c.policy; });
    Result<CreateReply> cr = t.create(root, "f");
    REQUIRE(cr.ok());
    CHECK(cr->open.open_flags == c.file_flags);
    CHECK(cr->entry.entry_timeout == c.timeout);
    CHECK(cr->entry.attr_timeout == c.timeout);
    CHECK(t.open(cr->entry.ino, O_RDONLY)->open_flags == c.file_flags);
    CHECK(t.opendir(root)->open_flags == c.dir_flags);
    CHECK(t.getattr(root)->attr_timeout == c.timeout);
  }
  TestFs custom([](PassthroughConfig& cfg) {
    cfg.entry_timeout = 7s;
    cfg.attr_timeout = 3s;
  });
  Entry f = custom.file(root, "f");
  CHECK(f.entry_timeout == 7s);
  CHECK(f.attr_timeout == 3s);
}

TEST_CASE("passthrough: bad configurations are refused with a message", "[passthrough][config]") {
  HostDir d;
  PassthroughConfig c;
  c.root = d.path();
  for (const char* bad : {"", "nodot", ".user", "user.", "system.posix_acl_access"}) {
    INFO(bad);
    c.stat_xattr = bad;
    MakeResult r = make_passthrough(c);
    CHECK(!r);
    CHECK(r.error.find("--stat-xattr") != std::string::npos);
  }
  c.stat_xattr = "user.custom.stat";
  c.max_cached_fds = 0;  // made at least 1
  MakeResult ok = make_passthrough(c);
  REQUIRE(ok);
  CHECK(ok.fs->config().max_cached_fds == 1);
  CHECK(ok.error.empty());
}

TEST_CASE("passthrough: the strict probe leaves no trace", "[passthrough][config]") {
  TestFs t;
  char list[256];
  CHECK(::llistxattr(t.dir.path().c_str(), list, sizeof list) == 0);
}
