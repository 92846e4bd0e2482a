// VolumeFiles: host-side file operations inside one dir volume, which can never leave it.
//
// ## Paths
// A path is relative to the volume root, '/'-separated, as an HTTP client sends it (already
// percent-decoded). It is checked lexically first: a NUL → invalid_path; an absolute path, or a
// `..` that would climb above the root at any point (`a/../../x`, even when `a` does not exist)
// → path_escape;
// `.`, empty components and a trailing '/' are dropped; `a/../b` is `b`. Then every operation
// resolves it against an O_PATH fd of the root with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
// | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): a symlink anywhere on the path (planted by a guest
// under stat virtualization relaxed/off) is path_escape, never followed, so a guest renaming
// things concurrently cannot redirect an operation outside the root either. Operations on the root
// itself that would destroy it (remove, remove_all of "" or ".") are invalid_path.
//
// ## Quota
// With a quota (the volume's shared passthrough::Quota), growth is charged before it happens and
// a write that does not fit is quota_exceeded with nothing changed; truncation and removal give
// bytes back. Files are created 0644 and directories 0755, owned by the server's user.
//
// ## Threads
// Every method is blocking and thread-safe; callers on an event loop run them on a blocking pool.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/unique_fd.hpp"
#include "volumes/error.hpp"

namespace sandfs::passthrough {
class Quota;
}

namespace sandfs::volumes {

enum class FileKind : uint8_t { file, directory, symlink, other };
std::string_view to_string(FileKind kind);  // "file", "directory", "symlink", "other"

struct FileStat {
  std::string path;  // normalised, relative to the root ("" is the root)
  FileKind kind = FileKind::other;
  uint64_t size = 0;
  // As a guest sees them: from the object's ownership record (user.sandfs.stat, written by
  // PassthroughFs mounts) when it has one, else the host's own permission bits and owner.
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t atime_ms = 0, mtime_ms = 0, ctime_ms = 0;
};

// The lexical check and normalisation above; exposed for tests and the HTTP layer.
Outcome<std::string> normalize_volume_path(std::string_view path);

class VolumeFiles {
 public:
  // Opens the root (a dir volume's folder) without following symlinks anywhere in `root`.
  static Outcome<std::unique_ptr<VolumeFiles>> open(const std::string& root,
                                                    std::shared_ptr<passthrough::Quota> quota);

  // A file larger than max_bytes is payload_too_large (stream it with open_read).
  Outcome<std::string> read(std::string_view path, uint64_t max_bytes);
  // Creates or truncates, mode 0644; the parent must exist (file_not_found otherwise).
  Outcome<Done> write(std::string_view path, std::span<const std::byte> data);
  Outcome<Done> mkdir(std::string_view path, bool parents);  // 0755; parents: like mkdir -p
  Outcome<Done> remove(std::string_view path);               // a file, a symlink or an empty dir
  Outcome<Done> remove_all(std::string_view path);           // never the root; never follows links
  Outcome<bool> exists(std::string_view path);               // escape attempts are still errors
  Outcome<FileStat> stat(std::string_view path);             // lstat semantics
  Outcome<std::vector<FileStat>> list(std::string_view path, bool recursive);
  Outcome<Done> copy(std::string_view from, std::string_view to);    // files only
  Outcome<Done> rename(std::string_view from, std::string_view to);  // noreplace: false

  // Streaming, for bodies too large to hold: an fd open for reading (O_RDONLY) with the size
  // at open, and a writer that charges the quota chunk by chunk.
  struct ReadHandle {
    UniqueFd fd;
    uint64_t size = 0;
  };
  Outcome<ReadHandle> open_read(std::string_view path);

  class Writer {
   public:
    virtual ~Writer() = default;
    virtual Outcome<Done> write(std::span<const std::byte> chunk) = 0;  // appends
    // Makes the content visible under the path (it is written to a hidden temporary and renamed
    // over the target, so readers never see half a file and a failed upload changes nothing).
    virtual Outcome<Done> commit() = 0;
  };
  Outcome<std::unique_ptr<Writer>> open_write(std::string_view path, bool create_parents);

 private:
  struct Impl;
  explicit VolumeFiles(std::unique_ptr<Impl> impl);

 public:
  ~VolumeFiles();

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sandfs::volumes
