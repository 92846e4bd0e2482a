// The one walk of the tree at mount that tells the quota what is already stored (quota.hpp).
//
// A coroutine on the thread that ran init(): per directory one blocking job reads all its
// entries and stats its regular files, so the walk costs one pool job per directory and never
// blocks the event loop. Directories still to visit are kept as paths below the root (not fds),
// so a wide tree cannot run the process out of fds. Unreadable parts count as empty.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "backends/passthrough/confinement.hpp"
#include "backends/passthrough/host_calls.hpp"
#include "backends/passthrough/passthrough.hpp"
#include "core/io/ring.hpp"

namespace sandfs::passthrough {

namespace {

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

struct DirScan {
  uint64_t bytes = 0;                                                // files with one link
  std::vector<std::pair<std::pair<dev_t, ino_t>, uint64_t>> linked;  // files with more
  std::vector<std::string> subdirs;
};

// Blocking: reads the whole directory `fd` and stats its files.
long scan(int fd, DirScan& out) {
  std::vector<char> buf(32 * 1024);
  for (;;) {
    long n = ::getdents64(fd, buf.data(), buf.size());
    if (n < 0) return host::neg_errno();
    if (n == 0) return 0;
    for (long pos = 0; pos < n;) {
      const auto* d = reinterpret_cast<const linux_dirent64*>(buf.data() + pos);
      pos += d->d_reclen;
      const char* name = d->d_name;
      if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
      if (d->d_type == DT_DIR) {
        out.subdirs.emplace_back(name);
        continue;
      }
      if (d->d_type != DT_REG && d->d_type != DT_UNKNOWN) continue;
      struct stat st {};
      if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        out.subdirs.emplace_back(name);
      } else if (S_ISREG(st.st_mode)) {
        if (st.st_nlink > 1) {
          out.linked.push_back({{st.st_dev, st.st_ino}, static_cast<uint64_t>(st.st_size)});
        } else {
          out.bytes += static_cast<uint64_t>(st.st_size);
        }
      }
    }
  }
}

}  // namespace

Task<void> PassthroughFs::measure_tree(std::shared_ptr<PassthroughFs> self) {
  io::Ring& ring = io::Ring::current();
  uint64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::vector<std::string> pending{""};
  const SharedFd root_fd = self->store_.root()->fd;
  while (!pending.empty() && !self->stopping_.load(std::memory_order_relaxed)) {
    const std::string path = std::move(pending.back());
    pending.pop_back();
    // Two statements: GCC 12 mishandles co_await in both arms of ?: (the result is destroyed
    // twice, closing the fd under the scan).
    Result<SharedFd> dir = Errno{ENOENT};
    if (path.empty()) {
      dir = co_await reopen(self->proc_fd_dir_, *root_fd, O_RDONLY | O_DIRECTORY);
    } else {
      dir = co_await open_beneath(root_fd->get(), path.c_str(), O_RDONLY | O_DIRECTORY);
    }
    if (!dir) continue;
    DirScan found;
    const int fd = (*dir)->get();
    Result<long> r = co_await ring.run_blocking([&]() -> long { return scan(fd, found); });
    (void)r;  // what could be read counts
    total += found.bytes;
    for (const auto& [id, size] : found.linked)
      if (seen.insert(id).second) total += size;
    for (std::string& name : found.subdirs)
      pending.push_back(path.empty() ? std::move(name) : path + "/" + name);
  }
  if (self->stopping_.load(std::memory_order_relaxed) && !pending.empty()) {
    // Unfinished: a partial count would stay wrong for every other user of a shared quota.
    self->quota_->abandon_count();
    co_return;
  }
  self->quota_->add_existing(total);
}

}  // namespace sandfs::passthrough
