// VolumeFiles: the operations. Resolution, errors and tree walks are in volume_path.hpp.
//
// Every operation normalises the path, opens the parent directory under confined resolution
// (volume_path.hpp) and then works on the last component with *at() calls on that fd with
// AT_SYMLINK_NOFOLLOW / O_NOFOLLOW. So the checked path and the used path are the same fds: there
// is no check-then-use window a guest renaming things could slip a symlink into.
//
// Choices the header leaves open:
// * remove_all() of a missing path is file_not_found, like remove() (callers wanting rm -f
//   semantics ignore that code).
// * write() rewrites the file in place (the same inode: hard links and open guest handles see the
//   new content), writing the new bytes before trimming the old tail; only the streaming writer,
//   copy() included, goes through a temporary and a rename.
// * A final component that is neither a regular file nor a directory (a FIFO, a socket, a device)
//   is invalid_path for read and write, and is never opened for I/O (open_regular_confined).
// * Hidden temporaries (.sandfs-upload-*, .sandfs-remove-*) are ordinary entries to list() and to
//   the guest while they exist.
#include "volumes/volume_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "backends/passthrough/quota.hpp"
#include "volumes/volume_path.hpp"

namespace sandfs::volumes {

using detail::files_error;
using detail::make_error;
using detail::open_confined;
using detail::split_parent;
using detail::SplitPath;

std::string_view to_string(FileKind kind) {
  switch (kind) {
    case FileKind::file:
      return "file";
    case FileKind::directory:
      return "directory";
    case FileKind::symlink:
      return "symlink";
    case FileKind::other:
      return "other";
  }
  return "other";
}

namespace {

constexpr mode_t file_mode = 0644;
constexpr mode_t dir_mode = 0755;
constexpr size_t io_chunk = 1 << 20;

std::string quoted(std::string_view op, const std::string& path) {
  return std::string(op) + " '" + path + "'";
}

// Writes all of `data` at `offset`; 0 or -errno (with *written set to what did land).
int write_all(int fd, const std::byte* data, size_t size, uint64_t offset, size_t* written) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      *written = done;
      return -errno;
    }
    done += static_cast<size_t>(n);
  }
  *written = done;
  return 0;
}

// A quota nobody has counted yet is counted here, by exactly one of its users (claim_count: a
// mount's walk or one of these calls); the others wait for ready(). Callers are blocking-pool
// threads, so waiting is a sleep. A count that cannot finish is given back (abandon_count) so
// that the next user counts.
void ensure_counted(passthrough::Quota& quota, int root_fd) {
  while (!quota.ready()) {
    if (quota.claim_count()) {
      uint64_t total = 0;
      try {
        total = detail::count_stored_bytes(root_fd);
      } catch (...) {
        quota.abandon_count();
        throw;
      }
      quota.add_existing(total);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// The error for what open_regular_confined returned.
Error regular_error(int err, std::string_view what) {
  if (err == -EISDIR)
    return make_error(ErrorCode::is_a_directory, std::string(what) + ": a directory");
  if (err == -ENODEV) {
    return make_error(ErrorCode::invalid_path, std::string(what) + ": not a regular file");
  }
  return files_error(err, what);
}

// The streaming writer: a hidden temporary beside the target, renamed over it on commit.
class UploadWriter final : public VolumeFiles::Writer {
 public:
  UploadWriter(UniqueFd dir, std::string leaf, std::string temp, UniqueFd file,
               std::shared_ptr<passthrough::Quota> quota, std::string path)
      : dir_(std::move(dir)),
        leaf_(std::move(leaf)),
        temp_(std::move(temp)),
        file_(std::move(file)),
        quota_(std::move(quota)),
        path_(std::move(path)) {}

  ~UploadWriter() override {
    if (committed_) return;
    ::unlinkat(dir_.get(), temp_.c_str(), 0);
    if (quota_) quota_->release(charged_);
  }

  Outcome<Done> write(std::span<const std::byte> chunk) override {
    if (committed_) return finished();
    if (!charge(chunk.size())) return over_quota();
    size_t written = 0;
    const int r = write_all(file_.get(), chunk.data(), chunk.size(), offset_, &written);
    offset_ += written;
    if (r != 0) {
      uncharge(chunk.size() - written);
      return files_error(r, quoted("write", path_));
    }
    return Done{};
  }

  // copy(): up to `size` bytes of `src` appended, in the kernel where it can.
  Outcome<Done> append_from(int src, uint64_t size) {
    if (committed_) return finished();
    if (!charge(size)) return over_quota();
    uint64_t copied = 0;
    bool kernel_copy = true;
    std::vector<std::byte> buf;
    while (copied < size) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(size - copied, io_chunk));
      ssize_t n = -1;
      if (kernel_copy) {
        loff_t in_off = static_cast<loff_t>(copied);
        loff_t out_off = static_cast<loff_t>(offset_);
        n = ::copy_file_range(src, &in_off, file_.get(), &out_off, want, 0);
        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
                      errno == EBADF)) {
          kernel_copy = false;
          continue;
        }
      } else {
        if (buf.empty()) buf.resize(io_chunk);
        n = ::pread(src, buf.data(), want, static_cast<off_t>(copied));
        if (n > 0) {
          size_t written = 0;
          const int r =
              write_all(file_.get(), buf.data(), static_cast<size_t>(n), offset_, &written);
          if (r != 0) {
            offset_ += written;
            uncharge(size - copied - written);
            return files_error(r, quoted("copy to", path_));
          }
        }
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        uncharge(size - copied);
        return files_error(err, quoted("copy to", path_));
      }
      if (n == 0) break;  // the source shrank since it was opened
      copied += static_cast<uint64_t>(n);
      offset_ += static_cast<uint64_t>(n);
    }
    uncharge(size - copied);
    return Done{};
  }

  Outcome<Done> commit() override {
    if (committed_) return finished();
    // What the rename replaces gives its bytes back once it is gone (if that was its last
    // link). Stat and rename are two steps; a host-side change in between only skews the count
    // by that file, never confinement.
    uint64_t replaced = 0;
    struct stat st {};
    if (::fstatat(dir_.get(), leaf_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISLNK(st.st_mode)) {
        return make_error(ErrorCode::path_escape,
                          quoted("write", path_) + ": it is a symlink, which is never followed");
      }
      if (S_ISDIR(st.st_mode)) {
        return make_error(ErrorCode::is_a_directory,
                          quoted("write", path_) + ": it is a directory");
      }
      if (S_ISREG(st.st_mode) && st.st_nlink == 1) replaced = static_cast<uint64_t>(st.st_size);
    } else if (errno != ENOENT) {
      return files_error(errno, quoted("write", path_));
    }
    if (::renameat(dir_.get(), temp_.c_str(), dir_.get(), leaf_.c_str()) != 0) {
      return files_error(errno, quoted("write", path_));
    }
    committed_ = true;
    file_.reset();
    if (quota_) quota_->release(replaced);
    return Done{};
  }

 private:
  bool charge(uint64_t bytes) {
    if (quota_ && !quota_->try_charge(bytes)) return false;
    charged_ += bytes;
    return true;
  }
  void uncharge(uint64_t bytes) {
    charged_ -= bytes;
    if (quota_) quota_->release(bytes);
  }
  Error over_quota() const {
    return make_error(ErrorCode::quota_exceeded,
                      quoted("write", path_) + ": the volume's quota would be exceeded (" +
                          std::to_string(quota_->available()) + " bytes left)");
  }
  Error finished() const {
    return make_error(ErrorCode::invalid_request,
                      quoted("write", path_) + ": the upload was already committed");
  }

  UniqueFd dir_;  // O_PATH fd of the target's directory
  std::string leaf_, temp_;
  UniqueFd file_;
  std::shared_ptr<passthrough::Quota> quota_;
  std::string path_;
  uint64_t offset_ = 0;
  uint64_t charged_ = 0;  // what the temporary holds, given back if it is dropped
  bool committed_ = false;
};

}  // namespace

struct VolumeFiles::Impl {
  UniqueFd root;  // O_PATH | O_DIRECTORY
  dev_t dev = 0;
  std::shared_ptr<passthrough::Quota> quota;

  void counted() {
    if (quota) ensure_counted(*quota, root.get());
  }
  bool charge(uint64_t bytes) { return !quota || quota->try_charge(bytes); }
  void release(uint64_t bytes) {
    if (quota) quota->release(bytes);
  }

  // The directory `rel` as an O_PATH fd.
  Outcome<UniqueFd> open_dir(const std::string& rel, std::string_view what) {
    const int fd = open_confined(root.get(), rel, O_PATH | O_DIRECTORY);
    if (fd < 0) return files_error(fd, what);
    return UniqueFd(fd);
  }

  // mkdir -p of `rel`, one component at a time on the fd of the one before: an O_PATH fd of it.
  // A component that exists and is not a directory is not_a_directory, or file_exists when it is
  // the last one and `rel` itself is what the caller asked to create.
  Outcome<UniqueFd> make_dirs(const std::string& rel, std::string_view what,
                              bool rel_is_target = false) {
    const int first = open_confined(root.get(), "", O_PATH | O_DIRECTORY);
    if (first < 0) return files_error(first, what);
    UniqueFd cur(first);
    size_t pos = 0;
    while (pos < rel.size()) {
      size_t end = rel.find('/', pos);
      if (end == std::string::npos) end = rel.size();
      const std::string name = rel.substr(pos, end - pos);
      const bool last = end == rel.size();
      pos = end + 1;
      if (::mkdirat(cur.get(), name.c_str(), dir_mode) == 0) {
        if (int r = detail::chmod_nofollow(cur.get(), name.c_str(), dir_mode); r != 0) {
          return files_error(r, what);
        }
      } else if (errno != EEXIST) {
        return files_error(errno, what);
      }
      const int next = open_confined(cur.get(), name, O_PATH | O_DIRECTORY);
      if (next < 0) {
        if (next == -ENOTDIR) {
          return make_error(
              last && rel_is_target ? ErrorCode::file_exists : ErrorCode::not_a_directory,
              std::string(what) + ": '" + rel.substr(0, end) + "' exists and is not a directory");
        }
        return files_error(next, what);
      }
      cur.reset(next);
    }
    return cur;
  }

  // Opens a regular file for reading: is_a_directory / invalid_path for anything else.
  Outcome<VolumeFiles::ReadHandle> open_regular(const std::string& p, std::string_view what) {
    struct stat st {};
    const int fd = detail::open_regular_confined(root.get(), p, O_RDONLY, st);
    if (fd < 0) return regular_error(fd, what);
    return VolumeFiles::ReadHandle{UniqueFd(fd), static_cast<uint64_t>(st.st_size)};
  }

  // open_write without the public type, for copy() to call append_from on.
  Outcome<std::unique_ptr<UploadWriter>> make_writer(const std::string& p, bool create_parents,
                                                     std::string_view op) {
    const std::string what = quoted(op, p);
    if (p.empty()) {
      return make_error(ErrorCode::is_a_directory, what + ": the volume root is a directory");
    }
    counted();
    const auto [parent, leaf] = split_parent(p);
    Outcome<UniqueFd> dir = create_parents ? make_dirs(parent, what) : open_dir(parent, what);
    if (!dir) return dir.error();
    struct stat st {};
    if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISLNK(st.st_mode)) {
        return make_error(ErrorCode::path_escape,
                          what + ": it is a symlink, which is never followed");
      }
      if (S_ISDIR(st.st_mode)) return make_error(ErrorCode::is_a_directory, what + ": a directory");
      if (!S_ISREG(st.st_mode)) {
        return make_error(ErrorCode::invalid_path, what + ": not a regular file");
      }
    } else if (errno != ENOENT) {
      return files_error(errno, what);
    }
    for (int attempt = 0;; ++attempt) {
      std::string temp = ".sandfs-upload-" + detail::random_hex();
      const int fd = ::openat(dir->get(), temp.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, file_mode);
      if (fd < 0) {
        if (errno == EEXIST && attempt < 8) continue;
        return files_error(errno, what);
      }
      UniqueFd file(fd);
      if (::fchmod(file.get(), file_mode) != 0) {
        const int err = errno;
        ::unlinkat(dir->get(), temp.c_str(), 0);
        return files_error(err, what);
      }
      return std::make_unique<UploadWriter>(std::move(*dir), leaf, std::move(temp), std::move(file),
                                            quota, p);
    }
  }
};

VolumeFiles::VolumeFiles(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VolumeFiles::~VolumeFiles() = default;

Outcome<std::unique_ptr<VolumeFiles>> VolumeFiles::open(const std::string& root,
                                                        std::shared_ptr<passthrough::Quota> quota) {
  if (root.empty() || root.find('\0') != std::string::npos) {
    return make_error(ErrorCode::invalid_path, "the volume root path is empty or has a NUL");
  }
  // No symlink anywhere on the root's own path either: one openat2 from "/" (or the working
  // directory) with RESOLVE_NO_SYMLINKS. ".." is allowed there; the root is trusted
  // configuration, only symlinks are refused.
  const bool absolute = root.front() == '/';
  UniqueFd base(absolute ? ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1);
  if (absolute && !base) return files_error(errno, "open the volume root");
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const std::string rel = absolute ? root.substr(root.find_first_not_of('/') == std::string::npos
                                                     ? root.size()
                                                     : root.find_first_not_of('/'))
                                   : root;
  long fd;
  do {
    fd = ::syscall(SYS_openat2, absolute ? base.get() : AT_FDCWD, rel.empty() ? "." : rel.c_str(),
                   &how, sizeof how);
  } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) {
      return make_error(ErrorCode::invalid_config,
                        "open the volume root: a symlink is on its path; give the real path");
    }
    return files_error(err, "open the volume root");
  }
  auto impl = std::make_unique<Impl>();
  impl->root.reset(static_cast<int>(fd));
  struct stat st {};
  if (::fstat(impl->root.get(), &st) != 0) return files_error(errno, "open the volume root");
  impl->dev = st.st_dev;
  impl->quota = std::move(quota);
  return std::unique_ptr<VolumeFiles>(new VolumeFiles(std::move(impl)));
}

Outcome<std::string> VolumeFiles::read(std::string_view path, uint64_t max_bytes) {
  Outcome<std::string> p = normalize_volume_path(path);
  if (!p) return p;
  const std::string what = quoted("read", *p);
  Outcome<ReadHandle> h = impl_->open_regular(*p, what);
  if (!h) return h.error();
  if (h->size > max_bytes) {
    return make_error(ErrorCode::payload_too_large,
                      what + ": " + std::to_string(h->size) + " bytes, over the limit of " +
                          std::to_string(max_bytes) + "; stream it instead");
  }
  std::string out;
  out.resize(static_cast<size_t>(h->size));
  size_t got = 0;
  for (;;) {
    if (got == out.size()) {
      // The file may have grown since fstat: read on, up to the limit.
      if (out.size() > max_bytes) break;
      out.resize(std::min<uint64_t>(std::max<size_t>(out.size() * 2, 4096), max_bytes + 1));
    }
    const ssize_t n = ::read(h->fd.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return files_error(errno, what);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > max_bytes) {
    return make_error(
        ErrorCode::payload_too_large,
        what + ": over the limit of " + std::to_string(max_bytes) + " bytes; stream it instead");
  }
  out.resize(got);
  return out;
}

Outcome<Done> VolumeFiles::write(std::string_view path, std::span<const std::byte> data) {
  Outcome<std::string> np = normalize_volume_path(path);
  if (!np) return np.error();
  const std::string& p = *np;
  const std::string what = quoted("write", p);
  if (p.empty()) return make_error(ErrorCode::is_a_directory, what + ": the volume root");
  impl_->counted();
  const auto [parent, leaf] = split_parent(p);
  Outcome<UniqueFd> dir = impl_->open_dir(parent, what);
  if (!dir) return dir.error();

  // Create with O_EXCL first so we know whether the file is ours to delete again if the quota
  // refuses it; an existing name is opened only if it is a regular file (never a symlink, a FIFO
  // or a device).
  UniqueFd file;
  bool created = false;
  struct stat st {};
  for (int attempt = 0; !file; ++attempt) {
    int fd = ::openat(dir->get(), leaf.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, file_mode);
    if (fd >= 0) {
      created = true;
      if (::fstat(fd, &st) != 0 || ::fchmod(fd, file_mode) != 0) {
        const int err = errno;
        ::close(fd);
        return files_error(err, what);
      }
    } else if (errno == EEXIST) {
      fd = detail::open_regular_confined(dir->get(), leaf, O_WRONLY, st);
      if (fd == -ENOENT && attempt < 8) continue;  // removed meanwhile: create it
      if (fd < 0) return regular_error(fd, what);
    } else {
      return files_error(errno, what);
    }
    file.reset(fd);
  }

  const uint64_t old_size = static_cast<uint64_t>(st.st_size);
  const uint64_t new_size = data.size();
  const uint64_t growth = new_size > old_size ? new_size - old_size : 0;
  if (!impl_->charge(growth)) {
    if (created) ::unlinkat(dir->get(), leaf.c_str(), 0);
    return make_error(ErrorCode::quota_exceeded, what + ": the volume's quota would be exceeded (" +
                                                     std::to_string(impl_->quota->available()) +
                                                     " bytes left)");
  }
  size_t written = 0;
  int r = write_all(file.get(), data.data(), data.size(), 0, &written);
  if (r == 0 && new_size < old_size && ::ftruncate(file.get(), static_cast<off_t>(new_size)) != 0) {
    r = -errno;
  }
  if (r != 0) {
    // Keep the count true to what the file now holds.
    struct stat now {};
    const uint64_t size_now =
        ::fstat(file.get(), &now) == 0 ? static_cast<uint64_t>(now.st_size) : new_size;
    const uint64_t grown = size_now > old_size ? size_now - old_size : 0;
    if (grown < growth) impl_->release(growth - grown);
    if (size_now < old_size) impl_->release(old_size - size_now);
    return files_error(r, what);
  }
  if (new_size < old_size) impl_->release(old_size - new_size);
  return Done{};
}

Outcome<Done> VolumeFiles::mkdir(std::string_view path, bool parents) {
  Outcome<std::string> np = normalize_volume_path(path);
  if (!np) return np.error();
  const std::string& p = *np;
  const std::string what = quoted("mkdir", p);
  if (p.empty()) {
    if (parents) return Done{};
    return make_error(ErrorCode::file_exists, what + ": the volume root exists");
  }
  if (parents) {
    Outcome<UniqueFd> dir = impl_->make_dirs(p, what, true);
    if (!dir) return dir.error();
    return Done{};
  }
  const auto [parent, leaf] = split_parent(p);
  Outcome<UniqueFd> dir = impl_->open_dir(parent, what);
  if (!dir) return dir.error();
  if (::mkdirat(dir->get(), leaf.c_str(), dir_mode) != 0) return files_error(errno, what);
  if (int r = detail::chmod_nofollow(dir->get(), leaf.c_str(), dir_mode); r != 0) {
    return files_error(r, what);
  }
  return Done{};
}

Outcome<Done> VolumeFiles::remove(std::string_view path) {
  Outcome<std::string> np = normalize_volume_path(path);
  if (!np) return np.error();
  const std::string& p = *np;
  const std::string what = quoted("remove", p);
  if (p.empty()) return make_error(ErrorCode::invalid_path, what + ": the volume root itself");
  impl_->counted();
  const auto [parent, leaf] = split_parent(p);
  Outcome<UniqueFd> dir = impl_->open_dir(parent, what);
  if (!dir) return dir.error();
  struct stat st {};
  if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return files_error(errno, what);
  }
  if (S_ISDIR(st.st_mode)) {
    if (::unlinkat(dir->get(), leaf.c_str(), AT_REMOVEDIR) != 0) {
      if (errno == EEXIST || errno == ENOTEMPTY) {
        return make_error(ErrorCode::directory_not_empty, what + ": the directory is not empty");
      }
      return files_error(errno, what);
    }
    return Done{};
  }
  if (::unlinkat(dir->get(), leaf.c_str(), 0) != 0) return files_error(errno, what);
  if (S_ISREG(st.st_mode) && st.st_nlink == 1) impl_->release(static_cast<uint64_t>(st.st_size));
  return Done{};
}

Outcome<Done> VolumeFiles::remove_all(std::string_view path) {
  Outcome<std::string> np = normalize_volume_path(path);
  if (!np) return np.error();
  const std::string& p = *np;
  const std::string what = quoted("remove", p);
  if (p.empty()) {
    return make_error(ErrorCode::invalid_path,
                      what +
                          ": the volume root itself is never removed (remove its entries, or "
                          "delete the volume)");
  }
  impl_->counted();
  const auto [parent, leaf] = split_parent(p);
  Outcome<UniqueFd> dir = impl_->open_dir(parent, what);
  if (!dir) return dir.error();
  struct stat st {};
  if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return files_error(errno, what);
  }
  if (!S_ISDIR(st.st_mode)) return remove(p);
  if (st.st_dev != impl_->dev) {
    return make_error(ErrorCode::path_escape, what + ": another filesystem is mounted there");
  }
  int fd = ::openat(dir->get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    if (int r = detail::chmod_nofollow(dir->get(), leaf.c_str(), (st.st_mode & 07777) | S_IRWXU);
        r != 0) {
      return files_error(r, what);
    }
    fd = ::openat(dir->get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  if (fd < 0) return files_error(errno, what);
  UniqueFd top(fd);
  struct stat tst {};
  if (::fstat(top.get(), &tst) != 0) return files_error(errno, what);
  if (tst.st_dev != impl_->dev) {
    return make_error(ErrorCode::path_escape, what + ": another filesystem is mounted there");
  }
  if ((tst.st_mode & S_IRWXU) != S_IRWXU &&
      ::fchmod(top.get(), (tst.st_mode & 07777) | S_IRWXU) != 0) {
    return files_error(errno, what);
  }
  Impl& impl = *impl_;
  Outcome<Done> cleared =
      detail::clear_directory(top.get(), impl.dev, p, [&impl](uint64_t n) { impl.release(n); });
  if (!cleared) return cleared;
  top.reset();
  if (::unlinkat(dir->get(), leaf.c_str(), AT_REMOVEDIR) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) {
      return make_error(ErrorCode::directory_not_empty,
                        what + ": new entries appeared while it was being removed");
    }
    return files_error(errno, what);
  }
  return Done{};
}

Outcome<bool> VolumeFiles::exists(std::string_view path) {
  Outcome<FileStat> st = stat(path);
  if (st) return true;
  if (st.error().code == ErrorCode::file_not_found ||
      st.error().code == ErrorCode::not_a_directory) {
    return false;
  }
  return st.error();
}

Outcome<FileStat> VolumeFiles::stat(std::string_view path) {
  Outcome<std::string> np = normalize_volume_path(path);
  if (!np) return np.error();
  const std::string& p = *np;
  const std::string what = quoted("stat", p);
  // O_PATH | O_NOFOLLOW on a final symlink gives the link itself, even under RESOLVE_NO_SYMLINKS.
  const int fd = open_confined(impl_->root.get(), p, O_PATH | O_NOFOLLOW);
  if (fd < 0) return files_error(fd, what);
  UniqueFd file(fd);
  struct stat st {};
  if (::fstatat(file.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    return files_error(errno, what);
  }
  FileStat out = detail::to_file_stat(st, p);
  detail::apply_ownership_record(file.get(), "", st, out);
  return out;
}

Outcome<std::vector<FileStat>> VolumeFiles::list(std::string_view path, bool recursive) {
  Outcome<std::string> np = normalize_volume_path(path);
  if (!np) return np.error();
  const std::string& p = *np;
  const std::string what = quoted("list", p);
  const int fd = open_confined(impl_->root.get(), p, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return files_error(fd, what);
  UniqueFd dir(fd);
  return detail::list_directory(dir.get(), impl_->dev, p, recursive);
}

Outcome<Done> VolumeFiles::copy(std::string_view from, std::string_view to) {
  Outcome<std::string> nf = normalize_volume_path(from);
  if (!nf) return nf.error();
  Outcome<std::string> nt = normalize_volume_path(to);
  if (!nt) return nt.error();
  Outcome<ReadHandle> src = impl_->open_regular(*nf, quoted("copy", *nf));
  if (!src) return src.error();
  Outcome<std::unique_ptr<UploadWriter>> w = impl_->make_writer(*nt, true, "copy to");
  if (!w) return w.error();
  if (Outcome<Done> r = (*w)->append_from(src->fd.get(), src->size); !r) return r;
  return (*w)->commit();
}

Outcome<Done> VolumeFiles::rename(std::string_view from, std::string_view to) {
  Outcome<std::string> nf = normalize_volume_path(from);
  if (!nf) return nf.error();
  Outcome<std::string> nt = normalize_volume_path(to);
  if (!nt) return nt.error();
  const std::string& f = *nf;
  const std::string& t = *nt;
  const std::string what = "rename '" + f + "' to '" + t + "'";
  if (f.empty() || t.empty()) {
    return make_error(ErrorCode::invalid_path, what + ": the volume root cannot be renamed");
  }
  if (t.size() > f.size() && t.compare(0, f.size(), f) == 0 && t[f.size()] == '/') {
    return make_error(ErrorCode::invalid_path, what + ": a directory cannot move inside itself");
  }
  impl_->counted();
  const SplitPath fs = split_parent(f);
  const SplitPath ts = split_parent(t);
  Outcome<UniqueFd> fdir = impl_->open_dir(fs.parent, what);
  if (!fdir) return fdir.error();
  struct stat src {};
  if (::fstatat(fdir->get(), fs.leaf.c_str(), &src, AT_SYMLINK_NOFOLLOW) != 0) {
    return files_error(errno, what);
  }
  Outcome<UniqueFd> tdir = impl_->make_dirs(ts.parent, what);
  if (!tdir) return tdir.error();
  uint64_t replaced = 0;
  struct stat dst {};
  if (::fstatat(tdir->get(), ts.leaf.c_str(), &dst, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISREG(dst.st_mode) && dst.st_nlink == 1 &&
      !(dst.st_dev == src.st_dev && dst.st_ino == src.st_ino)) {
    replaced = static_cast<uint64_t>(dst.st_size);
  }
  if (::renameat(fdir->get(), fs.leaf.c_str(), tdir->get(), ts.leaf.c_str()) != 0) {
    const int err = errno;
    if (err == EEXIST || err == ENOTEMPTY) {
      return make_error(ErrorCode::directory_not_empty,
                        what + ": the destination is a directory that is not empty");
    }
    if (err == EINVAL) {
      return make_error(ErrorCode::invalid_path, what + ": a directory cannot move inside itself");
    }
    return files_error(err, what);
  }
  impl_->release(replaced);
  return Done{};
}

Outcome<VolumeFiles::ReadHandle> VolumeFiles::open_read(std::string_view path) {
  Outcome<std::string> p = normalize_volume_path(path);
  if (!p) return p.error();
  return impl_->open_regular(*p, quoted("read", *p));
}

Outcome<std::unique_ptr<VolumeFiles::Writer>> VolumeFiles::open_write(std::string_view path,
                                                                      bool create_parents) {
  Outcome<std::string> p = normalize_volume_path(path);
  if (!p) return p.error();
  Outcome<std::unique_ptr<UploadWriter>> w = impl_->make_writer(*p, create_parents, "write");
  if (!w) return w.error();
  return std::unique_ptr<Writer>(std::move(*w));
}

}  // namespace sandfs::volumes
