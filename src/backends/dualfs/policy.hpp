// Dispatch policies: how DualFs combines a writable backend A with a backend B.
//
// Whatever the policy, every change lands in A: B is never written. A policy decides
//
//   lookup_order()  the sides a name is searched on, in precedence order. The first side that
//                   has the name (and, for B, has not had it whited out) provides the object; a
//                   directory found first merges with the same-named directory of the later side
//                   (lookups inside it and its listing see both) unless B's is whited out or
//                   A's is opaque (whiteouts.hpp); a non-directory found first hides the later
//                   side. A side absent from the order is never consulted. Listings follow the
//                   same order, one entry per name.
//   copy_up()       how a change to something only B holds is carried out. true (default):
//                   overlay semantics — a B file, symlink or special file about to change is
//                   copied up into A, and a B name that is removed or replaced is whited out.
//                   false: B's objects and names are read-only — such a change answers EROFS,
//                   nothing is copied and nothing of B is ever hidden. Either way directories
//                   get an A side when a name is added inside them or their attributes change
//                   (promotion keeps B's entries showing).
//   admit()         a last word on each operation before it runs: 0 lets it run, an errno
//                   refuses it with that error. OpInfo carries the operation, its names and,
//                   through OpInfo::path(), the path DualFs last saw them under.
//
// Policies are consulted on every request, from several threads at once: they must be cheap,
// do no I/O and be thread-safe (the built-in ones are immutable). A user policy derives from
// Policy, overrides what it needs and goes into DualFsConfig::policy (policy_test.cpp has one
// that refuses changes under a path prefix).
//
// Built-in policies (the reference's names; docs/dualfs.md has them per operation):
//   ReadBackendBWriteBackendA       read-b-write-a (default): lookups B then A; copy-up. A name
//                                   on both sides shows B's object until DualFs itself puts one
//                                   there (copy-up whites B's name out).
//   BackendAOnly                    a-only: A alone; B is never consulted.
//   BackendAFallbackToBackendBRead  a-fallback-b: lookups A then B, listings both, A wins; B is
//                                   read-only (copy_up() false): what only B has is read from B
//                                   and never changed, copied, renamed or removed (EROFS).
//   MergeReadsBackendAPrecedence    merge-a-precedence: lookups A then B, listings both, A wins;
//                                   copy-up — a full union, as kernel overlayfs.
// In the reference the last two differ only in their listing (the fallback listed A alone,
// which the issue rules out); neither plans a copy-up for an open, so both fail any open of a
// B-only file with EINVAL. Here the difference is what a change to B's objects does: fallback
// refuses it, merge copies up.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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

// The operation changes something (a namespace change, an attribute or xattr change, an open
// with write intent): what a policy refusing writes refuses.
bool is_change(OpKind op, bool write_intent);

// DualFs's view of its namespace, for OpInfo::path().
class NamespaceView {
 public:
  virtual ~NamespaceView() = default;
  // "/" for the root, "/a/b" for a node DualFs last saw as b in a; nullopt when DualFs no longer
  // knows where the inode is.
  virtual std::optional<std::string> path_of(uint64_t ino) const = 0;
};

struct OpInfo {
  OpKind op = OpKind::lookup;
  uint64_t ino = 0;           // the DualFs inode (the parent for name operations; link: the
                              // inode linked)
  std::string_view name;      // for name operations (and xattr names); empty otherwise
  uint64_t new_parent = 0;    // rename: the destination directory; link: the new name's
  std::string_view new_name;  // rename, link
  uint64_t source = 0;        // link: the inode linked
  uint32_t flags = 0;         // open flags for open/create, rename flags for rename
  bool write_intent = false;  // open/create with O_WRONLY, O_RDWR or O_TRUNC
  const NamespaceView* ns = nullptr;

  bool changes() const { return is_change(op, write_intent); }
  // The path operated on: for name operations (and xattr names excepted) the parent's path plus
  // the name, for inode operations the inode's path; nullopt when unknown.
  std::optional<std::string> path() const;
  // rename and link: the new name's path.
  std::optional<std::string> new_path() const;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  virtual SideOrder lookup_order() const = 0;
  virtual bool copy_up() const { return true; }
  virtual int admit(const OpInfo&) const { return 0; }
};

std::shared_ptr<const Policy> read_b_write_a_policy();
std::shared_ptr<const Policy> backend_a_only_policy();
std::shared_ptr<const Policy> backend_a_fallback_b_policy();
std::shared_ptr<const Policy> merge_a_precedence_policy();

// "read-b-write-a" | "a-only" | "a-fallback-b" | "merge-a-precedence"; null for anything else.
std::shared_ptr<const Policy> parse_policy(std::string_view text);

}  // namespace sandfs::dualfs
