// Each built-in policy against each kind of name: A only, B only, both sides, directories on
// both sides; lookups, reads (including B-only files, which the reference fails to open under
// three of the four policies), listings and writes.
#include "unit/backends/dualfs/dualfs_fixture.hpp"

using namespace sandfs;
using namespace sandfs::dualfs;
using namespace sandfs::dualfs::testing;

namespace {

void arrange(DualFixture& f) {
  f.A.put("only_a", "from A");
  f.B.put("only_b", "from B");
  f.A.put("both", "A copy");
  f.B.put("both", "B copy");
  f.A.put("dir/in_a", "a");
  f.B.put("dir/in_b", "b");
}

}  // namespace

TEST_CASE("policy names parse and unknown names are refused", "[dualfs][policy]") {
  CHECK(parse_policy("read-b-write-a") == read_b_write_a_policy());
  CHECK(parse_policy("a-only") == backend_a_only_policy());
  CHECK(parse_policy("a-fallback-b") == backend_a_fallback_b_policy());
  CHECK(parse_policy("merge-a-precedence") == merge_a_precedence_policy());
  CHECK(parse_policy("b-only") == nullptr);
  CHECK(read_b_write_a_policy()->lookup_order().first == Side::b);
  CHECK(backend_a_only_policy()->lookup_order().count == 1);
}

TEST_CASE("read-b-write-a sees both sides with B first", "[dualfs][policy]") {
  DualFixture f(read_b_write_a_policy());
  arrange(f);
  CHECK(*f.read("only_a") == "from A");
  CHECK(*f.read("only_b") == "from B");
  CHECK(*f.read("both") == "B copy");
  CHECK(*f.read("dir/in_a") == "a");
  CHECK(*f.read("dir/in_b") == "b");
  CHECK(f.names("") == std::vector<std::string>{"both", "dir", "only_a", "only_b"});
  CHECK(f.names("dir") == std::vector<std::string>{"in_a", "in_b"});
}

TEST_CASE("a-only never consults B", "[dualfs][policy]") {
  DualFixture f(backend_a_only_policy());
  arrange(f);
  CHECK(*f.read("only_a") == "from A");
  CHECK(f.lookup("only_b").error() == ENOENT);
  CHECK(*f.read("both") == "A copy");
  CHECK(f.lookup("dir/in_b").error() == ENOENT);
  CHECK(f.names("") == std::vector<std::string>{"both", "dir", "only_a"});
  CHECK(f.names("dir") == std::vector<std::string>{"in_a"});
  CHECK(f.b->reads == 0);
}

TEST_CASE("a-fallback-b reads B-only files and lists both sides", "[dualfs][policy]") {
  DualFixture f(backend_a_fallback_b_policy());
  arrange(f);
  CHECK(*f.read("only_b") == "from B");
  CHECK(*f.read("both") == "A copy");
  CHECK(*f.read("dir/in_b") == "b");
  CHECK(f.names("") == std::vector<std::string>{"both", "dir", "only_a", "only_b"});
  CHECK(f.names("dir") == std::vector<std::string>{"in_a", "in_b"});
}

TEST_CASE("merge-a-precedence merges listings and A wins shared names", "[dualfs][policy]") {
  DualFixture f(merge_a_precedence_policy());
  arrange(f);
  CHECK(*f.read("only_b") == "from B");
  CHECK(*f.read("both") == "A copy");
  CHECK(f.names("") == std::vector<std::string>{"both", "dir", "only_a", "only_b"});
}

TEST_CASE("every policy opens a B-only file for reading and writing", "[dualfs][policy]") {
  for (auto policy : {read_b_write_a_policy(), merge_a_precedence_policy()}) {
    INFO(policy->name());
    DualFixture f(policy);
    f.B.put("sub/file", "lower bytes");
    CHECK(*f.read("sub/file") == "lower bytes");
    REQUIRE(f.write("sub/file", "UPPER", O_WRONLY).ok());
    CHECK(*f.read("sub/file") == "UPPER bytes");
    CHECK(*f.A.content("sub/file") == "UPPER bytes");
    CHECK(*f.B.content("sub/file") == "lower bytes");
  }
}

TEST_CASE("a-fallback-b reads B's files and refuses to change them", "[dualfs][policy]") {
  DualFixture f(backend_a_fallback_b_policy());
  CHECK_FALSE(f.fs->policy().copy_up());
  f.B.put("sub/file", "lower bytes");
  f.A.put("sub/mine", "upper");
  CHECK(*f.read("sub/file") == "lower bytes");
  CHECK(f.write("sub/file", "UPPER", O_WRONLY).error() == EROFS);
  CHECK(f.write("sub/file", "", O_WRONLY | O_TRUNC).error() == EROFS);
  CHECK(f.unlink("sub/file").error() == EROFS);
  CHECK(f.rename("sub/file", "sub/other").error() == EROFS);
  CHECK(*f.read("sub/file") == "lower bytes");
  CHECK_FALSE(f.A.exists("sub/file"));
  // A's own files and new names are as writable as under any policy, also inside B's dirs.
  REQUIRE(f.write("sub/mine", "UP", O_RDWR).ok());
  REQUIRE(f.create("sub/new", "n").ok());
  REQUIRE(f.rename("sub/new", "sub/newer").ok());
  REQUIRE(f.unlink("sub/newer").ok());
  CHECK(f.names("sub") == std::vector<std::string>{"file", "mine"});
  CHECK(*f.A.content("sub/mine") == "UPper");
}

TEST_CASE("every policy writes new names into A only", "[dualfs][policy]") {
  for (auto policy : {read_b_write_a_policy(), backend_a_only_policy(),
                      backend_a_fallback_b_policy(), merge_a_precedence_policy()}) {
    INFO(policy->name());
    DualFixture f(policy);
    REQUIRE(f.create("new", "fresh").ok());
    REQUIRE(f.mkdir("d").ok());
    REQUIRE(f.create("d/x", "inner").ok());
    CHECK(*f.A.content("new") == "fresh");
    CHECK(*f.A.content("d/x") == "inner");
    CHECK_FALSE(f.B.exists("new"));
    CHECK_FALSE(f.B.exists("d"));
    CHECK(*f.read("d/x") == "inner");
  }
}

namespace {

class DenyUnlink final : public Policy {
 public:
  std::string_view name() const override { return "deny-unlink"; }
  SideOrder lookup_order() const override { return read_b_write_a_policy()->lookup_order(); }
  int admit(const OpInfo& op) const override { return op.op == OpKind::unlink ? EACCES : 0; }
};

}  // namespace

// What a user policy looks like: the merge policy, with every change under a path prefix
// refused (a read-only subtree inside a writable mount).
class ProtectPrefix final : public Policy {
 public:
  explicit ProtectPrefix(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string_view name() const override { return "protect-prefix"; }
  SideOrder lookup_order() const override { return merge_a_precedence_policy()->lookup_order(); }
  int admit(const OpInfo& op) const override {
    if (!op.changes()) return 0;
    const std::optional<std::string> path = op.path();
    if (!path || under(*path)) return EACCES;  // a path DualFs no longer knows: refuse
    if (op.new_parent != 0) {
      const std::optional<std::string> to = op.new_path();
      if (!to || under(*to)) return EACCES;
    }
    return 0;
  }

 private:
  bool under(const std::string& p) const { return p == prefix_ || p.starts_with(prefix_ + "/"); }
  std::string prefix_;
};

TEST_CASE("a user policy refuses every change under a path prefix", "[dualfs][policy]") {
  DualFixture f(std::make_shared<ProtectPrefix>("/keep"));
  f.B.put("keep/data", "kept");
  f.B.put("free/x", "x");
  f.B.put("keeper", "not under /keep");
  CHECK(*f.read("keep/data") == "kept");
  CHECK(f.names("keep") == std::vector<std::string>{"data"});
  CHECK(f.write("keep/data", "w", O_WRONLY).error() == EACCES);
  CHECK(f.create("keep/new").error() == EACCES);
  CHECK(f.mkdir("keep/sub").error() == EACCES);
  CHECK(f.unlink("keep/data").error() == EACCES);
  CHECK(f.rmdir("keep").error() == EACCES);
  CHECK(f.rename("keep/data", "free/data").error() == EACCES);
  CHECK(f.rename("free/x", "keep/x").error() == EACCES);
  SetAttrIn chmod;
  chmod.valid = fuse::FATTR_MODE;
  chmod.mode = 0700;
  CHECK(f.setattr("keep", chmod).error() == EACCES);
  CHECK(f.setattr("keep/data", chmod).error() == EACCES);
  const std::string v = "v";
  CHECK(run_coro(f.fs->setxattr(f.ctx, f.ino("keep/data"), "user.k",
                                std::span<const char>(v.data(), v.size()), 0))
            .error() == EACCES);
  CHECK(run_coro(f.fs->link(f.ctx, f.ino("keep/data"), f.ino("free"), "l")).error() == EACCES);
  CHECK_FALSE(f.A.exists("keep"));
  // Outside the prefix (also a name that merely starts like it) everything works.
  REQUIRE(f.write("free/x", "X", O_WRONLY).ok());
  REQUIRE(f.write("keeper", "K", O_WRONLY).ok());
  REQUIRE(f.create("free/new", "n").ok());
  REQUIRE(f.rename("free/new", "free/newer").ok());
  CHECK(*f.A.content("free/x") == "X");
  CHECK(*f.A.content("free/newer") == "n");
  CHECK(*f.B.content("keep/data") == "kept");
}

TEST_CASE("OpInfo paths follow DualFs's names", "[dualfs][policy]") {
  struct Recorder final : public Policy {
    std::string_view name() const override { return "recorder"; }
    SideOrder lookup_order() const override { return merge_a_precedence_policy()->lookup_order(); }
    int admit(const OpInfo& op) const override {
      if (op.op == OpKind::rename) {
        seen = op.path().value_or("?") + " -> " + op.new_path().value_or("?");
      } else if (op.op == OpKind::setattr || op.op == OpKind::create) {
        seen = op.path().value_or("?");
      }
      return 0;
    }
    mutable std::string seen;
  };
  auto policy = std::make_shared<Recorder>();
  DualFixture f(policy);
  f.B.put("d/e/file", "x");
  REQUIRE(f.create("d/e/new").ok());
  CHECK(policy->seen == "/d/e/new");
  SetAttrIn in;
  in.valid = fuse::FATTR_MODE;
  in.mode = 0600;
  REQUIRE(f.setattr("d/e/file", in).ok());
  CHECK(policy->seen == "/d/e/file");
  REQUIRE(f.setattr("", in).ok());
  CHECK(policy->seen == "/");
  REQUIRE(f.rename("d/e/file", "d/moved").ok());
  CHECK(policy->seen == "/d/e/file -> /d/moved");
  REQUIRE(f.setattr("d/moved", in).ok());
  CHECK(policy->seen == "/d/moved");
}

TEST_CASE("a user policy can refuse an operation before it runs", "[dualfs][policy]") {
  DualFixture f(std::make_shared<DenyUnlink>());
  f.B.put("keep", "x");
  CHECK(f.unlink("keep").error() == EACCES);
  CHECK(*f.read("keep") == "x");
  CHECK(f.A.exists("keep") == false);
}

TEST_CASE("read-b-write-a: an A object a B name hid never shows through once the name goes",
          "[dualfs][policy]") {
  DualFixture f(read_b_write_a_policy());
  f.A.put("file", "hidden A file");
  f.B.put("file", "B file");
  f.A.mkdirs("over");  // an empty A directory under a B file of that name
  f.B.put("over", "B file over A dir");
  f.B.mkdirs("d");
  f.A.put("d", "hidden A file under a B directory");
  CHECK(*f.read("file") == "B file");
  REQUIRE(f.unlink("file").ok());
  CHECK(f.lookup("file").error() == ENOENT);
  CHECK_FALSE(f.A.exists("file"));

  REQUIRE(f.create("src", "S").ok());
  REQUIRE(f.rename("src", "over").ok());
  CHECK(*f.read("over") == "S");
  CHECK(*f.A.content("over") == "S");

  REQUIRE(f.rmdir("d").ok());
  CHECK(f.lookup("d").error() == ENOENT);
  CHECK(f.names("") == std::vector<std::string>{"over"});
  CHECK(*f.B.content("file") == "B file");
  CHECK(f.B.exists("d"));
}
