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
  for (auto policy :
       {read_b_write_a_policy(), backend_a_fallback_b_policy(), merge_a_precedence_policy()}) {
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

TEST_CASE("a user policy can refuse an operation before it runs", "[dualfs][policy]") {
  DualFixture f(std::make_shared<DenyUnlink>());
  f.B.put("keep", "x");
  CHECK(f.unlink("keep").error() == EACCES);
  CHECK(*f.read("keep") == "x");
  CHECK(f.A.exists("keep") == false);
}
