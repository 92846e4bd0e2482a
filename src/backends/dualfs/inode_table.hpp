// InodeTable: DualFs inodes and what they stand for on each side.
//
// A DualFs inode maps to an A inode, a B inode, or (directories only) both. Non-directories are
// bound to exactly one side at a time; copy-up moves a node from B to A without changing its
// DualFs inode number.
//
// ## Lookup counts, towards the kernel and towards the children
// * `refs` is the kernel's lookup count of the DualFs inode (lookup, create, mkdir, ... and each
//   readdirplus entry add one; forget subtracts). Internal operations that need a node for a
//   while take a reference the same way and give it back with release_ref().
// * Each side binding holds exactly one lookup reference on that child inode (its "pin"). A child
//   lookup that returns an inode the node is already bound to gives the extra reference back at
//   once (bind() reports how many to forget).
// * When refs drops to zero the node is removed from the table and its pins are returned
//   (the caller forgets them on the children, outside the table lock). The root never goes.
// * Reverse maps (side, child inode) -> DualFs inode make a child inode reached by two names
//   (hard links, a rename seen through a fresh lookup) one DualFs inode, with one exception:
// * A B non-directory with several hard links is one DualFs inode PER NAME (keyed by parent
//   DualFs inode and name, Binding::by_name), because copy-up breaks B's hard links, as kernel
//   overlayfs does without index=on: the name written through is copied up alone, the other
//   names keep showing B's object. FUSE names an open by inode only, so each name must be its
//   own inode for the write to reach the copy of the name it went through. Several nodes then
//   pin the same B inode, one reference each. Once copied up, the node is an ordinary A node.
// * readdir reports DualFs inode numbers for children it has not bound yet by reserving one for
//   the (side, child inode); a later bind of that child uses the reserved number.
//
// One mutex guards the maps; it is held for a few map operations and never across a co_await.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/dualfs/policy.hpp"
#include "core/filesystem.hpp"

namespace sandfs::dualfs {

class Flight;

struct Node {
  InodeId ino = 0;
  uint32_t type = 0;  // S_IFMT bits; fixed for the node's life

  // Guarded by the table mutex.
  InodeId a = 0;  // A inode, 0 if none
  InodeId b = 0;  // B inode, 0 if none
  uint64_t refs = 0;
  InodeId parent = 0;  // a name the node was last seen under (copy-up installs there)
  std::string name;
  // A promotion or copy-up running for this node; others wait for it (flight.hpp).
  std::shared_ptr<Flight> flight;
  // Bound per name (a B hard link, see the header comment): keyed by (parent, name), not by b.
  bool by_name = false;

  bool is_dir() const { return S_ISDIR(type); }
  InodeId on(Side s) const { return s == Side::a ? a : b; }
};

using NodePtr = std::shared_ptr<Node>;

// Child references to give back after a table operation: (side, child inode, count).
struct ChildRef {
  Side side;
  InodeId ino;
  uint64_t count;
};

struct Binding {
  uint32_t type = 0;
  InodeId a = 0;
  InodeId b = 0;
  // A B-only non-directory with nlink > 1: one node per (parent, name).
  bool by_name = false;
};

class InodeTable final : public NamespaceView {
 public:
  // The root binds the roots of both children (fuse::root_id); it is never evicted.
  explicit InodeTable(bool root_has_b);

  NodePtr find(InodeId ino) const;

  // Binds the child inodes of `bind` (each carrying one fresh lookup reference) found under
  // (parent, name) to a DualFs node, adding one reference to it. References that duplicate an
  // existing pin are appended to `drop`. Returns the node.
  NodePtr bind(const Binding& bind, InodeId parent, std::string_view name,
               std::vector<ChildRef>& drop);

  // Adds one reference to a node already in hand (create over an existing, link).
  void add_ref(const NodePtr& n, uint64_t count = 1);
  // Drops `count` references; when none remain the node goes and its pins land in `drop`.
  void release_ref(InodeId ino, uint64_t count, std::vector<ChildRef>& drop);

  // Binds side `s` of `n` to child inode `child` (whose pin the caller hands over). A previous
  // binding on that side, and, for a copy-up (`drop_other`), the other side's binding, are
  // returned in `drop`.
  void set_side(const NodePtr& n, Side s, InodeId child, bool drop_other,
                std::vector<ChildRef>& drop);
  // Forgets side `s` of `n` (the child object is gone); its pin lands in `drop`.
  void clear_side(const NodePtr& n, Side s, std::vector<ChildRef>& drop);

  void set_anchor(const NodePtr& n, InodeId parent, std::string_view name);
  // A consistent copy of the node's mutable fields.
  struct View {
    InodeId a = 0, b = 0, parent = 0;
    std::string name;
    uint64_t refs = 0;
    InodeId on(Side s) const { return s == Side::a ? a : b; }
  };
  View view(const Node& n) const;

  // The DualFs inode number listings report for child `child` of side `s`.
  InodeId ino_for_listing(Side s, InodeId child);

  // Single flight (flight.hpp): the running flight of `n`, or a new one that the caller
  // (`leader` set) must finish and end_flight() afterwards.
  std::shared_ptr<Flight> claim_flight(const NodePtr& n, bool& leader);
  void end_flight(const NodePtr& n);

  size_t size() const;

  // The path of `ino` through the names nodes were last seen under (policy.hpp).
  std::optional<std::string> path_of(uint64_t ino) const override;

 private:
  struct Key {
    Side side;
    InodeId ino;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.ino * 2 + (k.side == Side::b));
    }
  };
  struct NameKey {
    InodeId parent;
    std::string name;
    bool operator==(const NameKey&) const = default;
  };
  struct NameKeyHash {
    size_t operator()(const NameKey& k) const {
      return std::hash<std::string_view>()(k.name) ^ (std::hash<uint64_t>()(k.parent) * 31);
    }
  };
  void unmap_locked(Side s, InodeId child, InodeId ino);
  // Ends `n`'s per-name binding (copy-up, eviction).
  void unname_locked(Node& n);
  NodePtr bind_by_name_locked(const Binding& bind, InodeId parent, std::string_view name,
                              std::vector<ChildRef>& drop);

  mutable std::mutex mu_;
  std::unordered_map<InodeId, NodePtr> nodes_;
  std::unordered_map<Key, InodeId, KeyHash> by_child_;
  std::unordered_map<Key, InodeId, KeyHash> reserved_;
  std::unordered_map<NameKey, InodeId, NameKeyHash> by_name_;
  InodeId next_ino_ = 2;
};

}  // namespace sandfs::dualfs
