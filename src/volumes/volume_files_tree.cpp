// The tree walks of VolumeFiles: recursive removal, listing, and the quota's first count.
//
// All three open a child by name below a directory fd with O_NOFOLLOW and compare its device with
// the volume's, so a guest that swaps a directory for a symlink mid-walk makes the open fail
// (ELOOP) instead of redirecting us, and a mount inside the volume is never entered.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <set>
#include <utility>

#include "core/unique_fd.hpp"
#include "volumes/volume_path.hpp"

namespace sandfs::volumes::detail {

namespace {

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Up to `limit` names of the directory `dir_fd` (without "." and ".."), read through a fresh open
// file description so each call starts at the beginning. -errno on failure.
int read_names(int dir_fd, size_t limit, std::vector<std::string>& out) {
  out.clear();
  const int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  int result = 0;
  while (out.size() < limit) {
    errno = 0;
    const dirent* d = ::readdir(dir);
    if (d == nullptr) {
      result = -errno;
      break;
    }
    const std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    out.emplace_back(name);
  }
  ::closedir(dir);
  return result;
}

// Opens the directory dir_fd/name for reading, never through a symlink; a directory without
// read and search permission for us (a guest's chmod 000) is given u+rwx first.
int open_child_dir(int dir_fd, const std::string& name, const struct stat& st) {
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    const int r = chmod_nofollow(dir_fd, name.c_str(), (st.st_mode & 07777) | S_IRWXU);
    if (r != 0) return r;
    fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  return fd < 0 ? -errno : fd;
}

class TreeRemover {
 public:
  TreeRemover(int top_fd, dev_t dev, const std::function<void(uint64_t)>& freed)
      : top_fd_(top_fd), dev_(dev), freed_(freed) {}

  Outcome<Done> clear(int dir_fd, const std::string& rel, int depth) {
    std::vector<std::string> names;
    // A guest writing into the tree while we remove it can make a pass find new entries; give up
    // after a few passes that found entries but removed none.
    int idle_passes = 0;
    for (;;) {
      if (int r = read_names(dir_fd, batch, names); r < 0) return files_error(r, "list " + q(rel));
      if (names.empty()) return Done{};
      size_t removed = 0;
      for (const std::string& name : names) {
        Outcome<bool> gone = remove_entry(dir_fd, rel, name, depth);
        if (!gone) return gone.error();
        if (*gone) ++removed;
      }
      if (removed == 0 && ++idle_passes > 3) {
        return make_error(ErrorCode::directory_not_empty,
                          "remove " + q(rel) + ": entries keep appearing or cannot be removed");
      }
    }
  }

 private:
  static constexpr size_t batch = 4096;
  static std::string q(const std::string& rel) { return "'" + rel + "'"; }

  // True when the entry is gone (or was moved up to be removed later).
  Outcome<bool> remove_entry(int dir_fd, const std::string& rel, const std::string& name,
                             int depth) {
    const std::string path = join(rel, name);
    struct stat st {};
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return true;
      return files_error(errno, "remove " + q(path));
    }
    if (!S_ISDIR(st.st_mode)) {
      if (::unlinkat(dir_fd, name.c_str(), 0) != 0) {
        if (errno == ENOENT) return true;
        if (errno == EISDIR) return false;  // swapped for a directory: the next pass sees it
        return files_error(errno, "remove " + q(path));
      }
      if (S_ISREG(st.st_mode) && st.st_nlink == 1) freed_(static_cast<uint64_t>(st.st_size));
      return true;
    }
    if (st.st_dev != dev_) {
      return make_error(ErrorCode::path_escape,
                        "remove " + q(path) + ": another filesystem is mounted there");
    }
    if (depth + 1 >= max_remove_depth) {
      // Too deep to hold another fd: move the subtree up to the top and take it from there.
      const std::string hoisted = ".sandfs-remove-" + random_hex();
      if (::renameat(dir_fd, name.c_str(), top_fd_, hoisted.c_str()) != 0) {
        if (errno == ENOENT) return true;
        return files_error(errno, "remove " + q(path));
      }
      return true;
    }
    const int fd = open_child_dir(dir_fd, name, st);
    if (fd < 0) {
      if (fd == -ENOENT) return true;
      if (fd == -ELOOP || fd == -ENOTDIR) return false;  // swapped: the next pass sees it
      return files_error(fd, "remove " + q(path));
    }
    UniqueFd child(fd);
    struct stat cst {};
    if (::fstat(child.get(), &cst) != 0) return files_error(errno, "remove " + q(path));
    if (cst.st_dev != dev_) {
      return make_error(ErrorCode::path_escape,
                        "remove " + q(path) + ": another filesystem is mounted there");
    }
    // Unlinking entries needs write and search permission on the directory; a guest may have
    // left it 0555.
    if ((cst.st_mode & S_IRWXU) != S_IRWXU &&
        ::fchmod(child.get(), (cst.st_mode & 07777) | S_IRWXU) != 0) {
      return files_error(errno, "remove " + q(path));
    }
    if (Outcome<Done> r = clear(child.get(), path, depth + 1); !r) return r.error();
    child.reset();
    if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0) {
      if (errno == ENOENT) return true;
      if (errno == ENOTEMPTY || errno == EEXIST) return false;  // refilled: next pass
      return files_error(errno, "remove " + q(path));
    }
    return true;
  }

  const int top_fd_;
  const dev_t dev_;
  const std::function<void(uint64_t)>& freed_;
};

class Lister {
 public:
  Lister(dev_t dev, bool recursive) : dev_(dev), recursive_(recursive) {}

  Outcome<Done> walk(int dir_fd, const std::string& rel, int depth) {
    std::vector<std::string> names;
    const size_t room = max_list_entries - out_.size();
    if (int r = read_names(dir_fd, room + 1, names); r < 0) {
      return files_error(r, "list '" + rel + "'");
    }
    if (names.size() > room) return too_many();
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = join(rel, name);
      struct stat st {};
      if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // removed since it was read
        FileStat unknown;
        unknown.path = path;
        out_.push_back(std::move(unknown));
        continue;
      }
      out_.push_back(to_file_stat(st, path));
      apply_ownership_record(dir_fd, name, st, out_.back());
      if (!recursive_ || !S_ISDIR(st.st_mode) || st.st_dev != dev_) continue;
      if (depth + 1 >= max_list_depth) {
        return make_error(ErrorCode::invalid_request,
                          "list '" + path + "': the tree is deeper than " +
                              std::to_string(max_list_depth) +
                              " levels; list a deeper directory on its own");
      }
      const int fd =
          ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) continue;  // swapped or unreadable: listed, not entered
      UniqueFd child(fd);
      struct stat cst {};
      if (::fstat(child.get(), &cst) != 0 || cst.st_dev != dev_) continue;
      if (Outcome<Done> r = walk(child.get(), path, depth + 1); !r) return r;
    }
    return Done{};
  }

  std::vector<FileStat> take() { return std::move(out_); }

 private:
  static Error too_many() {
    return make_error(ErrorCode::invalid_request, "the listing has more than " +
                                                      std::to_string(max_list_entries) +
                                                      " entries; list a smaller part of the tree");
  }

  const dev_t dev_;
  const bool recursive_;
  std::vector<FileStat> out_;
};

}  // namespace

Outcome<Done> clear_directory(int dir_fd, dev_t dev, const std::string& rel,
                              const std::function<void(uint64_t)>& freed) {
  TreeRemover remover(dir_fd, dev, freed);
  return remover.clear(dir_fd, rel, 0);
}

Outcome<std::vector<FileStat>> list_directory(int dir_fd, dev_t dev, const std::string& rel,
                                              bool recursive) {
  Lister lister(dev, recursive);
  if (Outcome<Done> r = lister.walk(dir_fd, rel, 0); !r) return r.error();
  return lister.take();
}

uint64_t count_stored_bytes(int root_fd) {
  // Directories still to visit are kept as paths below the root, not fds, so a wide tree cannot
  // run the process out of fds; each is reopened under confined resolution.
  uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> linked;
  std::vector<std::string> pending{""};
  std::vector<std::string> names;
  while (!pending.empty()) {
    const std::string rel = std::move(pending.back());
    pending.pop_back();
    const int fd = open_confined(root_fd, rel, O_RDONLY | O_DIRECTORY);
    if (fd < 0) continue;
    UniqueFd dir(fd);
    // Whatever could be read before an error counts; the rest counts as empty.
    (void)read_names(dir.get(), SIZE_MAX, names);
    for (const std::string& name : names) {
      struct stat st {};
      if (::fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        pending.push_back(join(rel, name));
      } else if (S_ISREG(st.st_mode)) {
        if (st.st_nlink > 1 && !linked.insert({st.st_dev, st.st_ino}).second) continue;
        total += static_cast<uint64_t>(st.st_size);
      }
    }
  }
  return total;
}

}  // namespace sandfs::volumes::detail
