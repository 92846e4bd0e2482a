#include "backends/dualfs/policy.hpp"

namespace sandfs::dualfs {

namespace {

class FixedPolicy final : public Policy {
 public:
  FixedPolicy(std::string_view name, SideOrder order) : name_(name), order_(order) {}
  std::string_view name() const override { return name_; }
  SideOrder lookup_order() const override { return order_; }

 private:
  std::string_view name_;
  SideOrder order_;
};

}  // namespace

std::shared_ptr<const Policy> read_b_write_a_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("read-b-write-a", SideOrder{Side::b, Side::a, 2});
  return p;
}

std::shared_ptr<const Policy> backend_a_only_policy() {
  static const auto p = std::make_shared<FixedPolicy>("a-only", SideOrder{Side::a, Side::b, 1});
  return p;
}

std::shared_ptr<const Policy> backend_a_fallback_b_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("a-fallback-b", SideOrder{Side::a, Side::b, 2});
  return p;
}

std::shared_ptr<const Policy> merge_a_precedence_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("merge-a-precedence", SideOrder{Side::a, Side::b, 2});
  return p;
}

std::shared_ptr<const Policy> parse_policy(std::string_view text) {
  if (text == "read-b-write-a") return read_b_write_a_policy();
  if (text == "a-only") return backend_a_only_policy();
  if (text == "a-fallback-b") return backend_a_fallback_b_policy();
  if (text == "merge-a-precedence") return merge_a_precedence_policy();
  return nullptr;
}

}  // namespace sandfs::dualfs
