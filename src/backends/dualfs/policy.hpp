// Dispatch policies: which backend a DualFs name is looked up on, and how directories combine.
//
// A DualFs puts a writable backend A over a backend B. Whatever the policy, every change lands in
// A (B is never written: a B object that must change is copied up into A first, copy_up.hpp).
// What a policy decides is only how the two namespaces are *read*:
//
//   lookup_order()       the sides a name is searched on, in precedence order. The first side
//                        that has the name (and, for B, has not had it whited out) provides the
//                        object. A side that is absent from the order is never consulted.
//   admit()              a last word on each operation before it runs: 0 lets it run, an errno
//                        refuses it with that error (for policies such as "read-only B names").
//
// Policies are consulted on every request, from several threads at once: they must be cheap,
// do no I/O and be thread-safe (the built-in ones are immutable).
//
// A directory found on the first side merges with the same-named directories of the later
// sides (their entries appear in its listing and in lookups inside it), unless B's is whited out
// or A's is opaque (whiteouts.hpp). A non-directory found first hides everything after it.
//
// Built-in policies (names as in the reference implementation):
//   ReadBackendBWriteBackendA     (default) lookups B then A. A name that exists on both sides
//                                 shows B's object until DualFs itself puts one there (copy-up
//                                 whites B's name out), after which A's copy is what is seen.
//   BackendAOnly                  A alone; B is never consulted.
//   BackendAFallbackToBackendBRead  lookups A then B: reads fall back to B for names A lacks,
//                                 listings include both.
//   MergeReadsBackendAPrecedence  lookups A then B, merged listings, A wins names on both sides.
// The last two differ in the reference only through its defects (fallback never listed B's
// names, neither could open a B-only file); here they are the same plan under two names.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace sandfs::dualfs {

enum class Side : uint8_t { a, b };

inline constexpr Side other(Side s) {
  return s == Side::a ? Side::b : Side::a;
}

// Up to two sides in precedence order.
struct SideOrder {
  Side first = Side::a;
  Side second = Side::b;
  uint8_t count = 1;

  bool contains(Side s) const { return (count >= 1 && first == s) || (count >= 2 && second == s); }
  Side at(uint8_t i) const { return i == 0 ? first : second; }
};

// The operations admit() is asked about.
enum class OpKind : uint8_t {
  lookup,
  getattr,
  setattr,
  readlink,
  mknod,
  mkdir,
  symlink,
  link,
  unlink,
  rmdir,
  rename,
  open,
  create,
  opendir,
  statfs,
  setxattr,
  getxattr,
  listxattr,
  removexattr,
  access,
};

struct OpInfo {
  OpKind op = OpKind::lookup;
  uint64_t ino = 0;           // the DualFs inode (the parent for name operations)
  std::string_view name;      // for name operations; empty otherwise
  uint32_t flags = 0;         // open flags for open/create
  bool write_intent = false;  // open/create with O_WRONLY, O_RDWR or O_TRUNC
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  virtual SideOrder lookup_order() const = 0;
  virtual int admit(const OpInfo&) const { return 0; }
};

std::shared_ptr<const Policy> read_b_write_a_policy();
std::shared_ptr<const Policy> backend_a_only_policy();
std::shared_ptr<const Policy> backend_a_fallback_b_policy();
std::shared_ptr<const Policy> merge_a_precedence_policy();

// "read-b-write-a" | "a-only" | "a-fallback-b" | "merge-a-precedence"; null for anything else.
std::shared_ptr<const Policy> parse_policy(std::string_view text);

}  // namespace sandfs::dualfs
