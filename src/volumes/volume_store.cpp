// VolumeStore: catalog rows (catalog.hpp) and the folders under volumes/, kept in agreement.
//
// Locks, in the order they may nest: quotas_mutex_ → the catalog's own mutex. usage_mutex_ and
// check_mutex_ never hold another. None of them is held across mkfs.ext4, a tree walk or a tree
// deletion, so one slow create or remove never stalls get/list of other volumes.
#include "volumes/volume_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "backends/passthrough/quota.hpp"
#include "core/log.hpp"
#include "core/unique_fd.hpp"
#include "volumes/catalog.hpp"
#include "volumes/uuid.hpp"

extern char** environ;

namespace sandfs::volumes {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t mib = uint64_t{1} << 20;
constexpr uint64_t min_disk_bytes = 8 * mib;
constexpr const char* staging_name = ".staging";
constexpr const char* trash_name = ".trash";
constexpr const char* disk_image_name = "disk.raw";
// How long a dir volume's walked size is reused (see used_bytes()).
constexpr auto usage_ttl = std::chrono::seconds(2);
constexpr size_t max_labels = 64;
constexpr size_t max_label_key = 253;
constexpr size_t max_label_value = 1024;

// A host failure in the store's own bookkeeping: never the caller's to fix, so always `internal`
// (error_from_errno would call a full host disk quota_exceeded, which would blame the volume).
Error host_error(int err, const std::string& what) {
  const char* desc = ::strerrordesc_np(err);
  return Error{ErrorCode::internal, what + ": " + (desc != nullptr ? desc : "unknown error")};
}

UniqueFd open_dir_at(int dirfd, const char* name) {
  return UniqueFd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// ---- Tree walks ---------------------------------------------------------------------------------
//
// Both walks (measuring and deleting) go depth-first holding one directory fd at a time, climbing
// back with "..": a guest can build a tree deeper than any fd limit or PATH_MAX. After each climb
// the parent's (dev, ino) is checked against the one remembered on the way down, so a tree
// reshuffled underneath the walk stops it instead of sending it elsewhere. Symlinks are never
// followed (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW) and other filesystems mounted inside are never
// entered.

struct Entry {
  std::string name;
  unsigned char type;  // DT_*
};

// All entries of the directory `fd` but "." and "..".
int read_entries(int fd, std::vector<Entry>& out) {
  out.clear();
  UniqueFd own(::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!own) return errno;
  DIR* dir = ::fdopendir(own.get());
  if (dir == nullptr) return errno;
  own.release();
  int err = 0;
  for (;;) {
    errno = 0;
    const dirent* d = ::readdir(dir);
    if (d == nullptr) {
      err = errno;
      break;
    }
    if (std::strcmp(d->d_name, ".") == 0 || std::strcmp(d->d_name, "..") == 0) continue;
    out.push_back(Entry{d->d_name, d->d_type});
  }
  ::closedir(dir);
  return err;
}

struct Frame {
  std::string name;  // in the parent
  dev_t dev;
  ino_t ino;
  std::vector<std::string> subdirs;  // still to visit
};

// Visitor:
//   void file(int dirfd, const Entry& e)            every entry that is not a directory
//   UniqueFd open_subdir(int dirfd, const std::string& name)   invalid: skip it
//   void foreign_mount(int dirfd, const std::string& name)     a subdir on another filesystem
//   void leave(int dirfd, const std::string& name)  after a subdir's walk
// Returns 0, or an errno when the walk could not go on (the root unreadable, the tree moved).
template <class Visitor>
int walk_tree(UniqueFd root, Visitor& visitor) {
  struct stat st {};
  if (::fstat(root.get(), &st) != 0) return errno;
  const dev_t root_dev = st.st_dev;
  std::vector<Frame> stack;
  std::vector<Entry> entries;
  UniqueFd cur = std::move(root);

  auto scan = [&](Frame& frame) -> int {
    if (int err = read_entries(cur.get(), entries); err != 0) return err;
    for (const Entry& e : entries) {
      bool dir = e.type == DT_DIR;
      if (e.type == DT_UNKNOWN) {
        struct stat est {};
        if (::fstatat(cur.get(), e.name.c_str(), &est, AT_SYMLINK_NOFOLLOW) != 0) continue;
        dir = S_ISDIR(est.st_mode);
      }
      if (dir) {
        frame.subdirs.push_back(e.name);
      } else {
        visitor.file(cur.get(), e);
      }
    }
    return 0;
  };

  stack.push_back(Frame{"", st.st_dev, st.st_ino, {}});
  if (int err = scan(stack.back()); err != 0) return err;
  while (true) {
    if (!stack.back().subdirs.empty()) {
      std::string name = std::move(stack.back().subdirs.back());
      stack.back().subdirs.pop_back();
      UniqueFd child = visitor.open_subdir(cur.get(), name);
      if (!child) continue;
      struct stat cst {};
      if (::fstat(child.get(), &cst) != 0) continue;
      if (cst.st_dev != root_dev) {
        visitor.foreign_mount(cur.get(), name);
        continue;
      }
      cur = std::move(child);
      stack.push_back(Frame{std::move(name), cst.st_dev, cst.st_ino, {}});
      // An unreadable directory is walked as empty; the visitor saw why when it opened it.
      (void)scan(stack.back());
      continue;
    }
    if (stack.size() == 1) return 0;
    std::string name = std::move(stack.back().name);
    stack.pop_back();
    UniqueFd parent(::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!parent) return errno;
    struct stat pst {};
    if (::fstat(parent.get(), &pst) != 0) return errno;
    if (pst.st_dev != stack.back().dev || pst.st_ino != stack.back().ino) return ESTALE;
    cur = std::move(parent);
    visitor.leave(cur.get(), name);
  }
}

// Bytes stored: st_size of regular files, each (dev, ino) once. Unreadable parts count as empty.
struct UsageVisitor {
  uint64_t bytes = 0;
  std::set<std::pair<dev_t, ino_t>> linked;

  void file(int dirfd, const Entry& e) {
    if (e.type != DT_REG && e.type != DT_UNKNOWN) return;
    struct stat st {};
    if (::fstatat(dirfd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (!S_ISREG(st.st_mode)) return;
    // Only files with more than one name can be met twice; the set stays small.
    if (st.st_nlink > 1 && !linked.emplace(st.st_dev, st.st_ino).second) return;
    bytes += static_cast<uint64_t>(st.st_size);
  }
  UniqueFd open_subdir(int dirfd, const std::string& name) {
    return open_dir_at(dirfd, name.c_str());
  }
  void foreign_mount(int, const std::string&) {}
  void leave(int, const std::string&) {}
};

// Deletes everything below the directory it is given. A guest may leave directories without
// write or search permission for their owner (0555, 0000) and read-only files: a directory's own
// permissions are raised to u+rwx before it is entered (we own what we store), a file's do not
// matter for unlinking. Records the first failure and keeps going, so as much goes as can.
struct DeleteVisitor {
  int first_error = 0;

  void fail(int err) {
    if (first_error == 0) first_error = err;
  }
  void file(int dirfd, const Entry& e) {
    if (::unlinkat(dirfd, e.name.c_str(), 0) != 0 && errno != ENOENT) fail(errno);
  }
  UniqueFd open_subdir(int dirfd, const std::string& name) {
    // An empty directory goes at once, without opening it.
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0) return {};
    if (errno == ENOENT) return {};
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      fail(errno);
      return {};
    }
    if (!S_ISDIR(st.st_mode)) {  // replaced under us: just unlink it
      if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) fail(errno);
      return {};
    }
    if ((st.st_mode & S_IRWXU) != S_IRWXU &&
        ::fchmodat(dirfd, name.c_str(), (st.st_mode & 07777) | S_IRWXU, 0) != 0) {
      fail(errno);
    }
    UniqueFd fd = open_dir_at(dirfd, name.c_str());
    if (!fd) fail(errno);
    return fd;
  }
  void foreign_mount(int, const std::string&) { fail(EBUSY); }
  void leave(int dirfd, const std::string& name) {
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) fail(errno);
  }
};

// Removes `name` in `dirfd` and everything below it, whatever the permissions inside. 0 or an
// errno (ENOENT counts as done).
int delete_tree(int dirfd, const std::string& name) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? 0 : errno;
  }
  if (!S_ISDIR(st.st_mode)) {
    return ::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT ? 0 : errno;
  }
  DeleteVisitor visitor;
  UniqueFd root = visitor.open_subdir(dirfd, name);
  if (!root) return visitor.first_error;  // 0 when it was empty and is gone
  if (int err = walk_tree(std::move(root), visitor); err != 0) visitor.fail(err);
  visitor.leave(dirfd, name);
  return visitor.first_error;
}

// ---- mkfs.ext4 ----------------------------------------------------------------------------------

std::string find_mkfs() {
  // A daemon's PATH often lacks the sbin directories, where e2fsprogs installs mkfs.ext4.
  std::vector<std::string> dirs;
  if (const char* path = ::getenv("PATH"); path != nullptr) {
    std::string_view rest(path);
    while (!rest.empty()) {
      const size_t colon = rest.find(':');
      const std::string_view dir = rest.substr(0, colon);
      if (!dir.empty() && dir.front() == '/') dirs.emplace_back(dir);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"})
    dirs.emplace_back(dir);
  for (const std::string& dir : dirs) {
    std::string candidate = dir + "/mkfs.ext4";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// Formats the image file `image` as ext4. mkfs.ext4 runs directly (posix_spawn, no shell), with
// a fixed environment (LC_ALL=C: its messages are reported, and should read the same everywhere)
// and its stderr captured into the error.
Outcome<Done> format_ext4(const std::string& image) {
  const std::string exe = find_mkfs();
  if (exe.empty()) {
    return Error{ErrorCode::internal,
                 "mkfs.ext4 was not found (searched PATH and the sbin directories); install "
                 "e2fsprogs to create disk volumes"};
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return host_error(errno, "pipe for mkfs.ext4");
  UniqueFd err_read(pipe_fds[0]);
  UniqueFd err_write(pipe_fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, err_write.get(), STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  // Other threads may open fds without O_CLOEXEC; mkfs gets none of them.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::string a0 = "mkfs.ext4", a1 = "-q", a2 = "-F", a3 = "-E",
              a4 = "lazy_itable_init=1,lazy_journal_init=1", a5 = image;
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data(), a5.data(), nullptr};
  std::string e0 = "PATH=/usr/sbin:/usr/bin:/sbin:/bin", e1 = "LC_ALL=C";
  char* envp[] = {e0.data(), e1.data(), nullptr};
  pid_t pid = 0;
  const int spawn_rc = ::posix_spawn(&pid, exe.c_str(), &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  err_write.reset();
  if (spawn_rc != 0) return host_error(spawn_rc, "starting " + exe);

  std::string captured;
  char buf[1024];
  for (;;) {
    const ssize_t n = ::read(err_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    // Keep the end, where the reason is; the pipe is still drained so mkfs never blocks on it.
    captured.append(buf, static_cast<size_t>(n));
    if (captured.size() > 4096) captured.erase(0, captured.size() - 4096);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return host_error(errno, "waiting for mkfs.ext4");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Done{};
  while (!captured.empty() && (captured.back() == '\n' || captured.back() == ' ')) {
    captured.pop_back();
  }
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  return Error{ErrorCode::internal, "mkfs.ext4 failed (" + how + ") formatting " + image +
                                        (captured.empty() ? std::string() : ": " + captured)};
}

// ---- Request checks -----------------------------------------------------------------------------

Outcome<Done> check_name(std::string_view name) {
  if (valid_volume_name(name)) return Done{};
  return Error{ErrorCode::invalid_name,
               "\"" + std::string(name) +
                   "\" is not a valid volume name: use 1 to 128 characters from A-Z, a-z, 0-9, "
                   "'.', '_' and '-', starting with a letter or a digit"};
}

Outcome<Done> check_labels(const Labels& labels) {
  if (labels.size() > max_labels) {
    return Error{ErrorCode::invalid_request,
                 "a volume carries at most " + std::to_string(max_labels) + " labels"};
  }
  for (const auto& [key, value] : labels) {
    if (key.empty() || key.size() > max_label_key) {
      return Error{ErrorCode::invalid_request,
                   "label keys must be 1 to " + std::to_string(max_label_key) + " bytes long"};
    }
    if (value.size() > max_label_value) {
      return Error{ErrorCode::invalid_request, "the value of label \"" + key +
                                                   "\" is longer than " +
                                                   std::to_string(max_label_value) + " bytes"};
    }
    if (key.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
      return Error{ErrorCode::invalid_request, "labels cannot contain NUL characters"};
    }
  }
  return Done{};
}

Outcome<Done> check_quota(uint64_t quota) {
  if (quota == 0) {
    return Error{ErrorCode::invalid_config,
                 "quota_bytes must be at least 1 byte; leave it out for a volume without a quota"};
  }
  if (quota > max_stored_bytes) {
    return Error{ErrorCode::invalid_config,
                 "quota_bytes must be at most " + std::to_string(max_stored_bytes)};
  }
  return Done{};
}

// The disk size rounded up to whole MiB, or why it cannot be.
Outcome<uint64_t> disk_size(const CreateVolume& request) {
  if (request.quota_bytes) {
    return Error{ErrorCode::invalid_config,
                 "a disk volume cannot have a quota: its size already caps what it stores; leave "
                 "quota_bytes out"};
  }
  if (!request.size_bytes) {
    return Error{ErrorCode::invalid_config,
                 "a disk volume needs size_bytes (at least 8 MiB, rounded up to whole MiB)"};
  }
  const uint64_t size = *request.size_bytes;
  if (size > max_stored_bytes - mib) {
    return Error{ErrorCode::invalid_config,
                 "size_bytes must be at most " + std::to_string(max_stored_bytes - mib)};
  }
  const uint64_t rounded = (size + mib - 1) / mib * mib;
  if (rounded < min_disk_bytes) {
    return Error{ErrorCode::invalid_config,
                 "size_bytes must be at least 8 MiB (8388608) for a disk volume, got " +
                     std::to_string(size)};
  }
  return rounded;
}

Error not_found(std::string_view name) {
  return Error{ErrorCode::volume_not_found, "no volume named \"" + std::string(name) + "\""};
}

}  // namespace

// ---- Impl ---------------------------------------------------------------------------------------

struct VolumeStore::Impl {
  fs::path data_dir;
  fs::path volumes_dir;
  UniqueFd lock_fd;  // flock: one process per data directory
  UniqueFd volumes_fd;
  UniqueFd staging_fd;
  UniqueFd trash_fd;
  std::unique_ptr<Catalog> catalog;

  std::mutex check_mutex;
  std::function<std::optional<std::string>(std::string_view)> in_use_check;

  // Keyed by volume id, so a volume removed and created again under its name never meets the old
  // one's quota.
  std::mutex quotas_mutex;
  // By volume id. Kept (not weak) while the volume exists, so what it counted is counted once:
  // a files API request on a volume no mount holds would otherwise walk the tree to count again.
  std::unordered_map<std::string, std::shared_ptr<passthrough::Quota>> quotas;

  struct Usage {
    uint64_t bytes;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex usage_mutex;
  std::unordered_map<std::string, Usage> usage;  // by volume id

  Outcome<Done> repair();
  uint64_t used_bytes(const VolumeRow& row);
  // `measure` false: used_bytes is left 0 (a dir volume just created is empty by construction).
  VolumeInfo info(const VolumeRow& row, bool measure = true);
  Outcome<VolumeRow> find_ready(std::string_view name);
  void forget(const std::string& id);
  // Moves volumes/<name> (if any) to .trash/<id>; false when there was nothing to move.
  Outcome<bool> to_trash(const std::string& name, const std::string& id);
  void delete_in_trash(const std::string& entry);
};

Outcome<Done> VolumeStore::Impl::repair() {
  // Rows: only `ready` ones describe volumes. A `creating` row is a create that never finished
  // and a `removing` row a remove that never finished; either way the volume goes, and its folder
  // (wherever the crash left it) becomes an orphan for the sweep below.
  Outcome<std::vector<VolumeRow>> rows = catalog->list(std::nullopt);
  if (!rows) return rows.error();
  std::unordered_set<std::string> ready;
  for (const VolumeRow& row : *rows) {
    if (row.state == VolumeState::ready) {
      ready.insert(row.name);
      continue;
    }
    SANDFS_LOG(info) << "volumes: dropping volume \"" << row.name << "\" (" << row.id << ") left "
                     << to_string(row.state) << " by an interrupted "
                     << (row.state == VolumeState::creating ? "create" : "remove");
    if (auto r = catalog->erase(row.id); !r) return r.error();
  }

  // Folders: everything under volumes/ that no ready row names, and all of .staging, moves into
  // .trash; then .trash is emptied. Moving first means a crash during the deletion leaves nothing
  // that could block a name.
  std::vector<Entry> entries;
  if (int err = read_entries(volumes_fd.get(), entries); err != 0) {
    return host_error(err, "reading " + volumes_dir.string());
  }
  auto move_to_trash = [&](int from_fd, const std::string& name) -> Outcome<Done> {
    Outcome<std::string> id = new_uuid();
    if (!id) return id.error();
    if (::renameat(from_fd, name.c_str(), trash_fd.get(), ("orphan-" + *id).c_str()) != 0 &&
        errno != ENOENT) {
      return host_error(errno, "moving " + name + " into " + (volumes_dir / trash_name).string());
    }
    return Done{};
  };
  for (const Entry& e : entries) {
    if (e.name == staging_name || e.name == trash_name || ready.count(e.name) != 0) continue;
    SANDFS_LOG(info) << "volumes: deleting " << (volumes_dir / e.name).string()
                     << ", which no volume owns";
    if (auto r = move_to_trash(volumes_fd.get(), e.name); !r) return r.error();
  }
  if (int err = read_entries(staging_fd.get(), entries); err != 0) {
    return host_error(err, "reading " + (volumes_dir / staging_name).string());
  }
  for (const Entry& e : entries) {
    if (auto r = move_to_trash(staging_fd.get(), e.name); !r) return r.error();
  }
  if (int err = read_entries(trash_fd.get(), entries); err != 0) {
    return host_error(err, "reading " + (volumes_dir / trash_name).string());
  }
  for (const Entry& e : entries)
    delete_in_trash(e.name);
  return Done{};
}

void VolumeStore::Impl::delete_in_trash(const std::string& entry) {
  // A failure leaves the entry in .trash, where it blocks nothing; the next open() retries.
  if (int err = delete_tree(trash_fd.get(), entry); err != 0) {
    SANDFS_LOG(warn) << "volumes: could not delete all of "
                     << (volumes_dir / trash_name / entry).string() << ": "
                     << ::strerrordesc_np(err) << "; the next start retries";
  }
}

uint64_t VolumeStore::Impl::used_bytes(const VolumeRow& row) {
  const fs::path dir = volumes_dir / row.name;
  if (row.kind == VolumeKind::disk) {
    struct stat st {};
    const fs::path image = dir / disk_image_name;
    if (::stat(image.c_str(), &st) != 0) return 0;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  {
    // A counted shared quota knows the answer exactly and for free.
    std::lock_guard lock(quotas_mutex);
    if (auto it = quotas.find(row.id); it != quotas.end()) {
      if (it->second->ready()) return it->second->used();
    }
  }
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(usage_mutex);
    if (auto it = usage.find(row.id); it != usage.end() && now - it->second.at < usage_ttl) {
      return it->second.bytes;
    }
  }
  // Walked without any lock: two callers may both walk, which costs time, not correctness.
  UsageVisitor visitor;
  if (UniqueFd root = open_dir_at(volumes_fd.get(), row.name.c_str())) {
    (void)walk_tree(std::move(root), visitor);
  }
  std::lock_guard lock(usage_mutex);
  usage[row.id] = Usage{visitor.bytes, now};
  return visitor.bytes;
}

VolumeInfo VolumeStore::Impl::info(const VolumeRow& row, bool measure) {
  VolumeInfo v;
  v.id = row.id;
  v.name = row.name;
  v.kind = row.kind;
  v.quota_bytes = row.quota_bytes;
  v.capacity_bytes = row.capacity_bytes;
  v.disk_format = row.disk_format;
  v.disk_fstype = row.disk_fstype;
  v.labels = row.labels;
  v.created_at_ms = row.created_at_ms;
  v.updated_at_ms = row.updated_at_ms;
  v.used_bytes = measure ? used_bytes(row) : 0;
  v.path = (volumes_dir / row.name).string();
  return v;
}

Outcome<VolumeRow> VolumeStore::Impl::find_ready(std::string_view name) {
  Outcome<std::optional<VolumeRow>> row = catalog->find_by_name(name);
  if (!row) return row.error();
  if (!*row || (*row)->state != VolumeState::ready) return not_found(name);
  return std::move(**row);
}

void VolumeStore::Impl::forget(const std::string& id) {
  {
    std::lock_guard lock(quotas_mutex);
    quotas.erase(id);
  }
  std::lock_guard lock(usage_mutex);
  usage.erase(id);
}

Outcome<bool> VolumeStore::Impl::to_trash(const std::string& name, const std::string& id) {
  if (::renameat(volumes_fd.get(), name.c_str(), trash_fd.get(), id.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return host_error(errno, "moving " + (volumes_dir / name).string() + " into " +
                               (volumes_dir / trash_name).string());
}

// ---- VolumeStore --------------------------------------------------------------------------------

VolumeStore::VolumeStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VolumeStore::~VolumeStore() = default;

const fs::path& VolumeStore::data_dir() const {
  return impl_->data_dir;
}

Outcome<std::unique_ptr<VolumeStore>> VolumeStore::open(const fs::path& data_dir) {
  auto impl = std::make_unique<Impl>();
  std::error_code ec;
  impl->data_dir = fs::absolute(data_dir, ec).lexically_normal();
  if (ec) return host_error(ec.value(), "resolving " + data_dir.string());
  // Directories are private to the server's user: guest-made files (set-uid ones included) must
  // not be reachable by other host users through the data directory.
  if (::mkdir(impl->data_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fs::create_directories(impl->data_dir, ec);
    if (ec) return host_error(ec.value(), "creating " + impl->data_dir.string());
  }
  UniqueFd data_fd(::open(impl->data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!data_fd) return host_error(errno, "opening " + impl->data_dir.string());

  impl->lock_fd.reset(::openat(data_fd.get(), "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!impl->lock_fd) return host_error(errno, "opening " + (impl->data_dir / "lock").string());
  if (::flock(impl->lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error{ErrorCode::internal,
                   "the data directory " + impl->data_dir.string() +
                       " is in use by another volume store (another sandfs process?); each "
                       "data directory can be served by one at a time"};
    }
    return host_error(errno, "locking " + (impl->data_dir / "lock").string());
  }

  auto make_dir = [](int parent, const char* name, const fs::path& shown) -> Outcome<UniqueFd> {
    if (::mkdirat(parent, name, 0700) != 0 && errno != EEXIST) {
      return host_error(errno, "creating " + shown.string());
    }
    UniqueFd fd = open_dir_at(parent, name);
    if (!fd) return host_error(errno, "opening " + shown.string() + " (it must be a directory)");
    return fd;
  };
  impl->volumes_dir = impl->data_dir / "volumes";
  Outcome<UniqueFd> volumes = make_dir(data_fd.get(), "volumes", impl->volumes_dir);
  if (!volumes) return volumes.error();
  impl->volumes_fd = std::move(*volumes);
  Outcome<UniqueFd> staging =
      make_dir(impl->volumes_fd.get(), staging_name, impl->volumes_dir / staging_name);
  if (!staging) return staging.error();
  impl->staging_fd = std::move(*staging);
  Outcome<UniqueFd> trash =
      make_dir(impl->volumes_fd.get(), trash_name, impl->volumes_dir / trash_name);
  if (!trash) return trash.error();
  impl->trash_fd = std::move(*trash);

  Outcome<std::unique_ptr<Catalog>> catalog = Catalog::open(impl->data_dir / "catalog.db");
  if (!catalog) return catalog.error();
  impl->catalog = std::move(*catalog);
  if (auto r = impl->repair(); !r) return r.error();
  return std::unique_ptr<VolumeStore>(new VolumeStore(std::move(impl)));
}

Outcome<VolumeInfo> VolumeStore::create(const CreateVolume& request) {
  Impl& s = *impl_;
  if (auto r = check_name(request.name); !r) return r.error();
  if (auto r = check_labels(request.labels); !r) return r.error();
  VolumeRow row;
  row.name = request.name;
  row.kind = request.kind;
  row.labels = request.labels;
  if (request.kind == VolumeKind::dir) {
    if (request.size_bytes) {
      return Error{ErrorCode::invalid_config,
                   "a dir volume has no size: use quota_bytes to cap what it stores, or kind "
                   "\"disk\" for a fixed-size ext4 disk"};
    }
    if (request.quota_bytes) {
      if (auto r = check_quota(*request.quota_bytes); !r) return r.error();
    }
    row.quota_bytes = request.quota_bytes;
  } else {
    Outcome<uint64_t> size = disk_size(request);
    if (!size) return size.error();
    row.capacity_bytes = *size;
    row.disk_format = "raw";
    row.disk_fstype = "ext4";
  }
  Outcome<std::string> id = new_uuid();
  if (!id) return id.error();
  row.id = *id;
  row.created_at_ms = row.updated_at_ms = now_ms();
  row.state = VolumeState::creating;

  // The row first: of concurrent creates of one name, exactly one gets past this line.
  if (auto r = s.catalog->insert(row); !r) return r.error();

  // From here every failure undoes what was done (staging folder, then row); a crash instead is
  // undone by the next open().
  bool placed = false;
  auto undo = [&](Error error) -> Error {
    if (placed) {
      if (auto r = s.to_trash(row.name, row.id); r && *r) s.delete_in_trash(row.id);
    } else if (int err = delete_tree(s.staging_fd.get(), row.id); err != 0) {
      SANDFS_LOG(warn) << "volumes: could not delete the staging folder of \"" << row.name
                       << "\": " << ::strerrordesc_np(err);
    }
    if (auto r = s.catalog->erase(row.id); !r) {
      SANDFS_LOG(warn) << "volumes: could not drop the row of the failed create of \"" << row.name
                       << "\": " << r.error().message;
    }
    return error;
  };

  const fs::path staged = s.volumes_dir / staging_name / row.id;
  if (::mkdirat(s.staging_fd.get(), row.id.c_str(), 0755) != 0) {
    return undo(host_error(errno, "creating " + staged.string()));
  }
  if (row.kind == VolumeKind::disk) {
    const std::string image = (staged / disk_image_name).string();
    {
      UniqueFd fd(::open(image.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!fd) return undo(host_error(errno, "creating " + image));
      // A sparse file: the image takes host space only as the guest fills it.
      if (::ftruncate(fd.get(), static_cast<off_t>(*row.capacity_bytes)) != 0) {
        if (errno == EFBIG || errno == EINVAL) {
          return undo(
              Error{ErrorCode::invalid_config, "size_bytes " + std::to_string(*row.capacity_bytes) +
                                                   " is more than the host filesystem under " +
                                                   s.data_dir.string() + " allows in one file"});
        }
        return undo(host_error(errno, "sizing " + image));
      }
    }
    if (auto r = format_ext4(image); !r) return undo(r.error());
    UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) return undo(host_error(errno, "syncing " + image));
  }

  // RENAME_NOREPLACE: a folder already at volumes/<name> (made behind the store's back) is never
  // replaced, even an empty one.
  if (::renameat2(s.staging_fd.get(), row.id.c_str(), s.volumes_fd.get(), row.name.c_str(),
                  RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST || errno == ENOTEMPTY) {
      return undo(Error{ErrorCode::volume_already_exists,
                        "something already exists at " + (s.volumes_dir / row.name).string() +
                            " that no volume owns; it is deleted when the server next starts, "
                            "or remove it by hand"});
    }
    return undo(host_error(errno, "moving " + staged.string() + " into place"));
  }
  placed = true;
  // The rename must be on disk before the row says `ready`.
  if (::fsync(s.volumes_fd.get()) != 0) {
    return undo(host_error(errno, "syncing " + s.volumes_dir.string()));
  }
  Outcome<bool> marked = s.catalog->set_state(row.id, VolumeState::creating, VolumeState::ready);
  if (!marked) return undo(marked.error());
  if (!*marked) {
    return undo(Error{ErrorCode::internal, "the catalog row of \"" + row.name +
                                               "\" changed while the volume was being created"});
  }
  const bool measure = row.kind == VolumeKind::disk;
  Outcome<std::optional<VolumeRow>> stored = s.catalog->find_by_id(row.id);
  if (stored && *stored) return s.info(**stored, measure);
  row.state = VolumeState::ready;
  return s.info(row, measure);
}

Outcome<VolumeInfo> VolumeStore::get(std::string_view name) {
  Outcome<VolumeRow> row = impl_->find_ready(name);
  if (!row) return row.error();
  return impl_->info(*row);
}

Outcome<VolumeInfo> VolumeStore::locate(std::string_view name) {
  Outcome<VolumeRow> row = impl_->find_ready(name);
  if (!row) return row.error();
  return impl_->info(*row, /*measure=*/false);
}

void VolumeStore::contents_changed(std::string_view name) {
  Outcome<std::optional<VolumeRow>> row = impl_->catalog->find_by_name(name);
  if (!row || !*row) return;
  std::lock_guard lock(impl_->usage_mutex);
  impl_->usage.erase((*row)->id);
}

Outcome<VolumeInfo> VolumeStore::get_by_id(std::string_view id) {
  Outcome<std::optional<VolumeRow>> row = impl_->catalog->find_by_id(id);
  if (!row) return row.error();
  if (!*row || (*row)->state != VolumeState::ready) {
    return Error{ErrorCode::volume_not_found, "no volume with id \"" + std::string(id) + "\""};
  }
  return impl_->info(**row);
}

Outcome<VolumeInfo> VolumeStore::locate_by_id(std::string_view id) {
  Outcome<std::optional<VolumeRow>> row = impl_->catalog->find_by_id(id);
  if (!row) return row.error();
  if (!*row || (*row)->state != VolumeState::ready) {
    return Error{ErrorCode::volume_not_found, "no volume with id \"" + std::string(id) + "\""};
  }
  return impl_->info(**row, /*measure=*/false);
}

Outcome<std::vector<VolumeInfo>> VolumeStore::list(const Labels& selector) {
  Outcome<std::vector<VolumeRow>> rows = impl_->catalog->list(VolumeState::ready, selector);
  if (!rows) return rows.error();
  std::vector<VolumeInfo> out;
  out.reserve(rows->size());
  for (const VolumeRow& row : *rows)
    out.push_back(impl_->info(row));
  return out;
}

Outcome<VolumeInfo> VolumeStore::update(std::string_view name, const UpdateVolume& request) {
  Impl& s = *impl_;
  Outcome<VolumeRow> row = s.find_ready(name);
  if (!row) return row.error();
  Catalog::Change change;
  change.labels = request.labels;
  if (request.labels) {
    if (auto r = check_labels(*request.labels); !r) return r.error();
  }
  if (request.quota_bytes) {
    const std::optional<uint64_t>& quota = *request.quota_bytes;
    if (row->kind == VolumeKind::disk) {
      // Asking a disk for "no quota" asks for what it already has.
      if (quota) {
        return Error{ErrorCode::invalid_config,
                     "\"" + row->name +
                         "\" is a disk volume: it cannot have a quota, its size caps what it "
                         "stores"};
      }
    } else {
      if (quota) {
        if (auto r = check_quota(*quota); !r) return r.error();
      }
      change.quota_bytes = quota;
    }
  }

  Outcome<std::optional<VolumeRow>> after = [&]() -> Outcome<std::optional<VolumeRow>> {
    // Held across the row change and the live quota's change, so quota() hands out either the
    // object with the new limit or a new object made from the new row, never a stale one.
    std::lock_guard lock(s.quotas_mutex);
    Outcome<std::optional<VolumeRow>> updated = s.catalog->update_ready(row->id, change);
    if (!updated || !*updated || !change.quota_bytes) return updated;
    auto it = s.quotas.find(row->id);
    if (it == s.quotas.end()) return updated;
    {
      const std::shared_ptr<passthrough::Quota>& q = it->second;
      // Every holder (each mount, the files API) sees the new cap at once; removing the quota
      // makes the same object unlimited, so a quota set later reaches today's mounts as well.
      q->set_limit(change.quota_bytes->value_or(std::numeric_limits<uint64_t>::max()));
    }
    return updated;
  }();
  if (!after) return after.error();
  if (!*after) return not_found(name);
  return s.info(**after);
}

Outcome<Done> VolumeStore::remove(std::string_view name) {
  Impl& s = *impl_;
  Outcome<VolumeRow> row = s.find_ready(name);
  if (!row) return row.error();
  // `removing` first, then the in-use check: from here get() no longer finds the volume, so a
  // mount starting now fails rather than slipping in after the check.
  Outcome<bool> marked = s.catalog->set_state(row->id, VolumeState::ready, VolumeState::removing);
  if (!marked) return marked.error();
  if (!*marked) return not_found(name);  // another remove got there first

  auto restore = [&] {
    if (auto r = s.catalog->set_state(row->id, VolumeState::removing, VolumeState::ready); !r) {
      SANDFS_LOG(warn) << "volumes: could not mark \"" << row->name
                       << "\" ready again: " << r.error().message;
    }
  };
  std::function<std::optional<std::string>(std::string_view)> check;
  {
    std::lock_guard lock(s.check_mutex);
    check = s.in_use_check;
  }
  if (check) {
    if (std::optional<std::string> user = check(row->name)) {
      restore();
      return Error{ErrorCode::volume_in_use, "volume \"" + row->name + "\" is in use by " + *user +
                                                 "; unmount it before removing the volume"};
    }
  }
  Outcome<bool> moved = s.to_trash(row->name, row->id);
  if (!moved) {
    restore();
    return moved.error();
  }
  if (auto r = s.catalog->erase(row->id); !r) {
    // The row stays `removing` with its folder in .trash: the next open() finishes the job.
    return r.error();
  }
  s.forget(row->id);
  if (*moved) s.delete_in_trash(row->id);
  return Done{};
}

void VolumeStore::set_in_use_check(
    std::function<std::optional<std::string>(std::string_view name)> check) {
  std::lock_guard lock(impl_->check_mutex);
  impl_->in_use_check = std::move(check);
}

std::shared_ptr<passthrough::Quota> VolumeStore::quota(std::string_view name) {
  Impl& s = *impl_;
  std::lock_guard lock(s.quotas_mutex);
  Outcome<std::optional<VolumeRow>> row = s.catalog->find_by_name(name);
  if (!row || !*row) return nullptr;
  const VolumeRow& r = **row;
  if (r.state != VolumeState::ready || r.kind != VolumeKind::dir) return nullptr;
  std::shared_ptr<passthrough::Quota>& slot = s.quotas[r.id];
  if (slot) return slot;
  auto q = std::make_shared<passthrough::Quota>(
      r.quota_bytes.value_or(std::numeric_limits<uint64_t>::max()));
  slot = q;
  return q;
}

}  // namespace sandfs::volumes
