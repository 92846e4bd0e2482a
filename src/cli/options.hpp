// The sandfsd command line: a small hand-written parser (flags as `--name value` or
// `--name=value`, `--` ends the flags) and the help texts.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/passthrough/policy.hpp"
#include "core/filesystem.hpp"
#include "core/hooks.hpp"
#include "core/log.hpp"

namespace sandfs::cli {

// Exit codes.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;  // could not mount or serve
inline constexpr int exit_usage = 2;    // bad command line

enum class Backend { memfs, passthrough, dual };

// PassthroughFs: where the guest's owners, modes, file types and device numbers live (in an
// xattr record on each host file, or nowhere), and how host permission bits follow the guest's
// (backends/passthrough/policy.hpp).
using passthrough::HostPermissions;
using passthrough::StatVirtualization;

struct PassthroughOptions {
  std::string root;  // --root: the host directory to serve (required)
  StatVirtualization stat_virtualization = StatVirtualization::strict;
  HostPermissions host_permissions = HostPermissions::private_;
  bool readonly = false;
  std::optional<uint64_t> quota_bytes;    // none: no quota beyond the host filesystem's
  std::optional<std::string> stat_xattr;  // none: the backend's default record name
  bool follow_root_symlinks = false;      // default: a symlink anywhere in --root is refused
};

// DualFs (--backend dual): one side, as given to --a or --b.
//   memfs[:capacity=SIZE]   an in-memory filesystem (A only)
//   passthrough:DIR         a host directory (strict stat virtualization, private host modes)
struct DualSide {
  enum class Kind { memfs, passthrough };
  Kind kind = Kind::memfs;
  std::string root;                        // passthrough
  std::optional<uint64_t> capacity_bytes;  // memfs
};

struct DualOptions {
  std::optional<DualSide> a;  // --a: the writable upper side (required)
  std::optional<DualSide> b;  // --b: the lower side, never written (required)
  bool b_readonly = false;    // --b-readonly: open B read-only too (EROFS if anything tried)
  std::string policy = "read-b-write-a";  // --policy
};

// Parses a --a / --b value; on failure returns why.
std::optional<std::string> parse_dual_side(std::string_view text, DualSide& out);

struct MountCommand {
  std::string mountpoint;
  Backend backend = Backend::memfs;
  std::optional<uint64_t> capacity_bytes;  // memfs; none: unlimited
  std::optional<uint64_t> max_inodes;      // memfs; none: unlimited
  PassthroughOptions passthrough;          // passthrough only
  DualOptions dual;                        // dual only
  // Without --cache: always for memfs (nothing else changes its files), auto for passthrough
  // (the host may change the directory underneath).
  CachePolicy cache = CachePolicy::always;
  bool writeback = false;
  unsigned threads = 2;
  log::Level log_level = log::Level::info;
  bool allow_other = true;
  bool default_permissions = true;
  uint32_t max_write = 1u << 20;
  std::optional<int> ready_fd;
  // --deny OP[=ERRNO] (repeatable): requests refused before they reach the backend.
  std::vector<DenyRule> deny;
  // sandfsd vhost-user only.
  std::vector<std::string> socket_paths;  // --socket-path (repeatable): one server each
  unsigned queues = 1;                    // --queues: request queues per device
};

inline constexpr unsigned max_queues = 64;

// sandfsd serve: the volume service and its HTTP admin API.
struct ServeCommand {
  std::string data_dir;  // --data-dir; empty: default_data_dir()
  std::string listen = "127.0.0.1:7270";
  std::string unix_socket;  // --unix-socket; empty: none
  unsigned threads = 2;
  log::Level log_level = log::Level::info;
  unsigned max_connections = 512;                  // --max-connections
  uint64_t max_upload_bytes = uint64_t{16} << 30;  // --max-upload: largest file PUT
  std::optional<int> ready_fd;                     // --ready-fd: "ready\n" once listening
  std::string msb_prefix = "/msb";                 // --msb-prefix; empty ("none"): off
  std::string msb_default_volume;                  // --msb-default-volume NAME
};

inline constexpr unsigned max_threads = 64;

struct Command {
  enum class Kind {
    help,
    version,
    mount_help,
    mount,
    vhost_user_help,
    vhost_user,
    serve_help,
    serve,
    error
  };
  Kind kind = Kind::error;
  MountCommand mount;
  ServeCommand serve;
  std::string error;  // Kind::error: what is wrong, naming the flag or argument
};

// Parses the arguments after argv[0].
Command parse_command_line(std::span<const std::string_view> args);

std::string usage_text();
std::string mount_usage_text();
std::string vhost_user_usage_text();
std::string serve_usage_text();
// /var/lib/sandfs for root, else ${XDG_DATA_HOME:-$HOME/.local/share}/sandfs.
std::string default_data_dir();
std::string version_text();
std::string_view to_string(Backend backend);

}  // namespace sandfs::cli
