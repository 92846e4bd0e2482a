// Whiteouts and opaque directories: what of B stays hidden, recorded in A.
//
// A whiteout (A directory D, name N) says "B's object N in the directory D stands for is gone":
// lookups never consult B for N there and listings leave B's N out. It is made when a B name is
// unlinked, rmdir-ed or renamed away. A whiteout stays while D exists, also under an A object of
// that name.
// A copy-up hides B's object of its name too (a policy that looks at B first must see the
// copy), but without a whiteout of its own: the copy carries the mark, the xattr
// `user.sandfs-dual.copy-up` set on it in the staging directory before the atomic rename into
// place. It hides B's N while the copy is at N. Unlinking or renaming the copy away is then an
// ordinary removal of a name B shows (DualFs::b_has_visible does not count copy-ups), which
// leaves a whiteout first: B's original never comes back. Where A takes no such xattr, or with
// memory storage, a copy-up leaves a whiteout as before. Copy-ups are found lazily: a listing of
// the A directory (the one that reads its markers) names its non-directories, and only a name
// B also has is checked for the mark (one A lookup and getxattr), once per directory and name.
// An opaque A directory takes nothing from B: mkdir over a whited-out name makes one, so the old
// B directory's entries never show through, and the mark travels with the directory on rename.
//
// ## Storage
//   memory   (MemFs A, or any A that cannot keep them) a map from A directory inode to its marks;
//            gone with the DualFs instance, like A's own content.
//   markers  (persistent A, e.g. PassthroughFs) empty regular files in the A directory itself:
//            `.sandfs-dual.wh.NAME` for a whiteout of NAME, `.sandfs-dual.opaque` for an opaque
//            directory. They survive a remount. A directory's markers are read once (one
//            listing of the A directory) and cached; DualFs is the only writer of A.
// Every name starting with `.sandfs-dual.` is reserved (is_reserved): DualFs hides such names
// of both sides from lookups and listings and refuses to create them. A whiteout of a name
// longer than 255 - 16 bytes cannot be stored as a marker: that unlink or rename answers
// ENAMETOOLONG under markers storage.
//
// Thread-safe; the cache lock is never held across a co_await.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/filesystem.hpp"

namespace sandfs::dualfs {

enum class WhiteoutStorage { memory, markers };

inline constexpr std::string_view reserved_prefix = ".sandfs-dual.";
inline constexpr std::string_view whiteout_prefix = ".sandfs-dual.wh.";
inline constexpr std::string_view opaque_marker = ".sandfs-dual.opaque";
inline constexpr std::string_view staging_name = ".sandfs-dual.staging";

// The xattr that marks an A object as a copy-up hiding B's object of its name; xattrs whose
// name starts with reserved_xattr_prefix are DualFs's own: hidden from the guest (never listed,
// ENODATA/EPERM), never copied up from B.
inline constexpr std::string_view reserved_xattr_prefix = "user.sandfs-dual.";
inline constexpr std::string_view copy_up_xattr = "user.sandfs-dual.copy-up";

inline bool is_reserved(std::string_view name) {
  return name.substr(0, reserved_prefix.size()) == reserved_prefix;
}
inline bool is_reserved_xattr(std::string_view name) {
  return name.substr(0, reserved_xattr_prefix.size()) == reserved_xattr_prefix;
}

// The marks of one A directory (an immutable snapshot).
struct DirMarks {
  bool opaque = false;
  std::set<std::string, std::less<>> names;  // whited-out names
  // Copy-ups (markers storage): known copy-ups, names checked and found not to be one, and the
  // non-directories the A directory held when its markers were read (the candidates), kept as
  // sorted name hashes: 8 bytes a name, a collision only costs a check.
  std::set<std::string, std::less<>> copied;
  std::set<std::string, std::less<>> not_copied;
  std::vector<uint64_t> a_files;
  bool whited_out(std::string_view name) const { return opaque || names.count(name) != 0; }
  static uint64_t name_hash(std::string_view name) { return std::hash<std::string_view>()(name); }
  // A's object `name` may be a copy-up nobody has checked yet.
  bool unchecked_candidate(std::string_view name) const {
    return copied.count(name) == 0 && not_copied.count(name) == 0 &&
           std::binary_search(a_files.begin(), a_files.end(), name_hash(name));
  }
};

class Whiteouts {
 public:
  Whiteouts(Filesystem& a, WhiteoutStorage storage) : a_(a), storage_(storage) {}

  WhiteoutStorage storage() const { return storage_; }

  // The marks of A directory `dir` (loaded from its markers on first use).
  Task<Result<std::shared_ptr<const DirMarks>>> marks(InodeId dir);
  // B's `name` under A directory `dir` is hidden (whited out, `dir` is opaque, or A's object of
  // that name is a copy-up).
  Task<Result<bool>> hides(InodeId dir, std::string_view name);
  // Only whiteouts and opacity: what still hides B's `name` once A's object of that name is gone.
  Task<Result<bool>> whited_out(InodeId dir, std::string_view name);
  Task<Status> add(InodeId dir, std::string_view name);
  // A copy-up was installed at `name` in `dir`, carrying copy_up_xattr.
  Task<Status> note_copy(InodeId dir, std::string_view name);
  Task<Status> set_opaque(InodeId dir);
  // Removes the markers of `dir` before A's rmdir (or a rename over it) needs it empty.
  Task<Status> clear(InodeId dir);
  // `dir` is gone from A: forget its marks.
  void forget_dir(InodeId dir);

 private:
  Task<Status> make_marker(InodeId dir, const std::string& marker);
  void update(InodeId dir, const std::shared_ptr<const DirMarks>& base, bool opaque,
              std::string_view name);
  // Applies `change` to the newest snapshot of `dir`'s marks (or `base`).
  template <class F>
  void change(InodeId dir, const std::shared_ptr<const DirMarks>& base, F&& change);
  // A's object `name` in `dir` carries copy_up_xattr.
  Task<Result<bool>> is_copy(InodeId dir, std::string_view name);

  Filesystem& a_;
  WhiteoutStorage storage_;
  std::mutex mu_;
  std::map<InodeId, std::shared_ptr<const DirMarks>> dirs_;
};

}  // namespace sandfs::dualfs
