#include "backends/dualfs/policy.hpp"

namespace sandfs::dualfs {

namespace {

class FixedPolicy final : public Policy {
 public:
  FixedPolicy(std::string_view name, SideOrder order, bool copy_up)
      : name_(name), order_(order), copy_up_(copy_up) {}
  std::string_view name() const override { return name_; }
  SideOrder lookup_order() const override { return order_; }
  bool copy_up() const override { return copy_up_; }

 private:
  std::string_view name_;
  SideOrder order_;
  bool copy_up_;
};

bool names_a_child(OpKind op) {
  switch (op) {
    case OpKind::lookup:
    case OpKind::mknod:
    case OpKind::mkdir:
    case OpKind::symlink:
    case OpKind::unlink:
    case OpKind::rmdir:
    case OpKind::rename:
    case OpKind::create:
      return true;
    default:
      return false;
  }
}

std::optional<std::string> join(std::optional<std::string> dir, std::string_view name) {
  if (!dir) return std::nullopt;
  if (dir->empty() || dir->back() != '/') dir->push_back('/');
  dir->append(name);
  return dir;
}

}  // namespace

bool is_change(OpKind op, bool write_intent) {
  switch (op) {
    case OpKind::setattr:
    case OpKind::mknod:
    case OpKind::mkdir:
    case OpKind::symlink:
    case OpKind::link:
    case OpKind::unlink:
    case OpKind::rmdir:
    case OpKind::rename:
    case OpKind::create:
    case OpKind::setxattr:
    case OpKind::removexattr:
      return true;
    case OpKind::open:
      return write_intent;
    default:
      return false;
  }
}

std::optional<std::string> OpInfo::path() const {
  if (ns == nullptr) return std::nullopt;
  if (names_a_child(op)) return join(ns->path_of(ino), name);
  return ns->path_of(ino);
}

std::optional<std::string> OpInfo::new_path() const {
  if (ns == nullptr || new_parent == 0) return std::nullopt;
  return join(ns->path_of(new_parent), new_name);
}

std::shared_ptr<const Policy> read_b_write_a_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("read-b-write-a", SideOrder{Side::b, Side::a, 2}, true);
  return p;
}

std::shared_ptr<const Policy> backend_a_only_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("a-only", SideOrder{Side::a, Side::b, 1}, true);
  return p;
}

std::shared_ptr<const Policy> backend_a_fallback_b_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("a-fallback-b", SideOrder{Side::a, Side::b, 2}, false);
  return p;
}

std::shared_ptr<const Policy> merge_a_precedence_policy() {
  static const auto p =
      std::make_shared<FixedPolicy>("merge-a-precedence", SideOrder{Side::a, Side::b, 2}, true);
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
