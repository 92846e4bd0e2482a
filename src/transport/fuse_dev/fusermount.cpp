#include "transport/fuse_dev/fusermount.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "transport/fuse_dev/fuse_mount.hpp"

extern char** environ;

namespace sandfs::fuse_dev {

namespace {

constexpr const char* commfd_env = "_FUSE_COMMFD";

struct SpawnResources {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attr{};
  SpawnResources() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnResources() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  SpawnResources(const SpawnResources&) = delete;
  SpawnResources& operator=(const SpawnResources&) = delete;
};

// Starts `args[0]` (PATH lookup unless it contains '/') with a clean signal state: the server
// blocks SIGINT/SIGTERM in all its threads, and a blocked mask survives exec. `keep_fd` (if >= 0)
// is inherited even though it is close-on-exec here. Returns the pid, or -errno.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
            int keep_fd) {
  SpawnResources res;
  if (keep_fd >= 0) {
    // dup2 onto itself clears FD_CLOEXEC in the child (glibc >= 2.29).
    posix_spawn_file_actions_adddup2(&res.actions, keep_fd, keep_fd);
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&res.attr, &empty);
  posix_spawnattr_setsigdefault(&res.attr, &defaults);
  posix_spawnattr_setflags(&res.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, commfd_env, std::strlen(commfd_env)) == 0 &&
        (*e)[std::strlen(commfd_env)] == '=') {
      continue;  // never pass on a stale one from our own environment
    }
    envp.push_back(*e);
  }
  for (const auto& e : extra_env)
    envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, argv[0], &res.actions, &res.attr, argv.data(), envp.data());
  if (rc != 0) return -rc;
  return pid;
}

// Waits for `pid`; returns its exit status, or 128 + signal number.
int wait_child(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 127;
}

}  // namespace

int receive_fd(int socket) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;

  int fd = -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (fd < 0) {
        fd = received;
      } else {
        ::close(received);  // only one was expected
      }
    }
  }
  if (fd < 0) {
    errno = n == 0 ? ECONNRESET : EPROTO;
    return -1;
  }
  return fd;
}

UniqueFd fusermount_mount(const std::string& program, const std::string& options,
                          const std::string& mountpoint) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    const int e = errno;
    throw MountError(e, std::string("socketpair: ") + std::strerror(e));
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);

  SANDFS_LOG(debug) << "running " << program << " -o " << options << " -- " << mountpoint;
  const pid_t pid =
      spawn({program, "-o", options, "--", mountpoint},
            {std::string(commfd_env) + "=" + std::to_string(theirs.get())}, theirs.get());
  if (pid < 0) {
    throw MountError(
        -pid, "cannot run " + program + ": " + std::strerror(-pid) + " (is fuse3 installed?)");
  }
  theirs.reset();  // so a helper that dies without sending gives us EOF

  const int fd = receive_fd(ours.get());
  const int receive_errno = errno;
  const int status = wait_child(pid);
  if (fd < 0) {
    if (status != 0) {
      throw MountError(EIO, program + " failed to mount " + mountpoint + " (exit status " +
                                std::to_string(status) + "; its message is above)");
    }
    throw MountError(receive_errno, program + " exited without passing the /dev/fuse fd: " +
                                        std::strerror(receive_errno));
  }
  UniqueFd result(fd);
  if (status != 0) {
    SANDFS_LOG(warn) << program << " passed the fd but exited with status " << status;
  }
  return result;
}

int fusermount_unmount(const std::string& program, const std::string& mountpoint) {
  const pid_t pid = spawn({program, "-u", "-q", "-z", "--", mountpoint}, {}, -1);
  if (pid < 0) {
    SANDFS_LOG(error) << "cannot run " << program << ": " << std::strerror(-pid);
    return -pid;
  }
  const int status = wait_child(pid);
  return status == 0 ? 0 : EIO;
}

}  // namespace sandfs::fuse_dev
