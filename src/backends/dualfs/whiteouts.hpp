// Whiteouts and opaque directories: what of B stays hidden, recorded in A.
//
// A whiteout (A directory D, name N) says "B's object N in the directory D stands for is gone":
// lookups never consult B for N there and listings leave B's N out. It is made when a B name is
// unlinked, rmdir-ed or renamed away, and when a B file is copied up (so a later unlink or
// rename of the copy cannot bring the B original back, and so that a policy that looks at B
// first sees the copy). A whiteout stays while D exists, also under an A object of that name.
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

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include "core/filesystem.hpp"

namespace sandfs::dualfs {

enum class WhiteoutStorage { memory, markers };

inline constexpr std::string_view reserved_prefix = ".sandfs-dual.";
inline constexpr std::string_view whiteout_prefix = ".sandfs-dual.wh.";
inline constexpr std::string_view opaque_marker = ".sandfs-dual.opaque";
inline constexpr std::string_view staging_name = ".sandfs-dual.staging";

inline bool is_reserved(std::string_view name) {
  return name.substr(0, reserved_prefix.size()) == reserved_prefix;
}

// The marks of one A directory (an immutable snapshot).
struct DirMarks {
  bool opaque = false;
  std::set<std::string, std::less<>> names;  // whited-out names
};

class Whiteouts {
 public:
  Whiteouts(Filesystem& a, WhiteoutStorage storage) : a_(a), storage_(storage) {}

  WhiteoutStorage storage() const { return storage_; }

  // The marks of A directory `dir` (loaded from its markers on first use).
  Task<Result<std::shared_ptr<const DirMarks>>> marks(InodeId dir);
  // B's `name` under A directory `dir` is hidden (whited out, or `dir` is opaque).
  Task<Result<bool>> hides(InodeId dir, std::string_view name);
  Task<Status> add(InodeId dir, std::string_view name);
  Task<Status> set_opaque(InodeId dir);
  // Removes the markers of `dir` before A's rmdir (or a rename over it) needs it empty.
  Task<Status> clear(InodeId dir);
  // `dir` is gone from A: forget its marks.
  void forget_dir(InodeId dir);

 private:
  Task<Status> make_marker(InodeId dir, const std::string& marker);
  void update(InodeId dir, const std::shared_ptr<const DirMarks>& base, bool opaque,
              std::string_view name);

  Filesystem& a_;
  WhiteoutStorage storage_;
  std::mutex mu_;
  std::map<InodeId, std::shared_ptr<const DirMarks>> dirs_;
};

}  // namespace sandfs::dualfs
