// MountedFs: one sandfsd mount through the real kernel, for one test case.
//
// The constructor makes a fresh mountpoint /tmp/sandfs-it-XXXXXX (MountSpec::dir_prefix), starts
// `sandfsd mount --backend memfs <flags> MOUNTPOINT` (or the backend, flags and launcher of a
// MountSpec) with its output in MOUNTPOINT.log, and returns once the kernel has the
// mount (the server wrote "ready" on --ready-fd, or /proc/self/mountinfo shows fuse.sandfs there).
// unmount() (also run by the destructor) unmounts with umount(2), waits for the server, CHECKs that
// it exited 0 and removes the mountpoint. The server gets SIGTERM if the test process dies first
// (PR_SET_PDEATHSIG), so a killed test does not leave a mount behind.
//
// With SANDFS_IT_BACKEND=passthrough, the MemFs tests' mounts (the flags-only constructor) serve
// a fresh host directory /tmp/sandfs-ptit-host-XXXXXX with `--backend passthrough --root DIR`
// instead, removed after the unmount: CTest runs the backend-neutral MemFs tests that way too
// (posix_on_passthrough/).
//
// Developer aid: with SANDFS_IT_REFERENCE=tmpfs the same tests run against a tmpfs mount instead
// (--capacity becomes size=, --max-inodes nr_inodes=, the other flags are ignored), which is how
// the expectations were checked against the kernel's own in-memory filesystem. Tests tagged
// [fuse] only make sense on FUSE and are meant to be excluded then: `memfs_mount_test '~[fuse]'`.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sandfs::it {

// The sandfsd binary the tests start (set by main from --sandfsd or $SANDFSD).
std::string& sandfsd_path();

// True when the tests run against tmpfs (SANDFS_IT_REFERENCE=tmpfs) rather than sandfsd.
bool reference_tmpfs();

// True when the flags-only mounts serve a host directory (SANDFS_IT_BACKEND=passthrough): the
// host filesystem's own limits (ext4: one block of xattr values per inode) then apply.
bool passthrough_backend();

// What to mount and how to start the server.
struct MountSpec {
  std::string backend = "memfs";
  // Between `mount --backend NAME` and the mountpoint, e.g. {"--capacity", "1MiB"}.
  std::vector<std::string> flags;
  // Runs the server through another program, e.g. {"/usr/bin/setpriv", "--reuid=65534", ...,
  // "--"}: sandfsd then mounts as that user (through fusermount3).
  std::vector<std::string> launcher;
  // The mountpoint is a fresh mkdtemp(dir_prefix + "XXXXXX").
  std::string dir_prefix = "/tmp/sandfs-it-";
  // chown the mountpoint to this user first (fusermount3 requires the mounting user to be able to
  // write it).
  std::optional<uid_t> mountpoint_owner;
};

class MountedFs {
 public:
  // `flags` go between `mount --backend memfs` and the mountpoint, e.g. {"--capacity", "1MiB"}
  // (see SANDFS_IT_BACKEND above).
  explicit MountedFs(std::vector<std::string> flags = {});
  explicit MountedFs(MountSpec spec);
  ~MountedFs();
  MountedFs(const MountedFs&) = delete;
  MountedFs& operator=(const MountedFs&) = delete;

  const std::string& dir() const { return dir_; }
  // dir() + "/" + rel.
  std::string path(std::string_view rel) const;
  pid_t server_pid() const { return pid_; }

  // Unmounts (umount(2), lazily if still busy, which is then a test failure), waits for the
  // server and CHECKs that it exited 0. Idempotent.
  void unmount();

  // Sends `sig` to the server and waits for it to exit. Returns its wait status; afterwards the
  // mount must be gone (the server unmounts itself), which callers check with is_mounted().
  int signal_and_wait(int sig);

  // Whether /proc/self/mountinfo lists a mount of type fuse.sandfs (or tmpfs) at `dir`.
  static bool is_mounted(const std::string& dir);

  // The last lines of the server's log, for failure messages.
  std::string log_tail() const;

 private:
  void init(const MountSpec& spec);
  void start(const MountSpec& spec);
  void start_tmpfs(const std::vector<std::string>& flags);
  int wait_server(int timeout_ms);
  void cleanup_files();

  std::string dir_;
  std::string log_;
  std::string host_dir_;  // SANDFS_IT_BACKEND=passthrough: the served host directory
  pid_t pid_ = -1;
  bool mounted_ = false;
};

}  // namespace sandfs::it
