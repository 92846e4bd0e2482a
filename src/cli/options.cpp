#include "cli/options.hpp"

#include <unistd.h>

#include <cstdlib>
#include <vector>

#include <boost/version.hpp>

#include "core/protocol/fuse_kernel.hpp"
#include "core/units.hpp"
#include "http/msb_api.hpp"
#include "volumes/volume.hpp"

namespace sandfs::cli {

namespace {

Command error(std::string message) {
  Command c;
  c.kind = Command::Kind::error;
  c.error = std::move(message);
  return c;
}

Command of_kind(Command::Kind kind) {
  Command c;
  c.kind = kind;
  return c;
}

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

// Why `name` cannot be an xattr name ("namespace.rest", at most XATTR_NAME_MAX bytes), or none.
std::optional<std::string> bad_xattr_name(std::string_view name) {
  constexpr size_t xattr_name_max = 255;
  if (name.empty()) return "needs an xattr name such as user.sandfs.stat";
  if (name.size() > xattr_name_max) return "longer than 255 bytes";
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == name.size()) {
    return quoted(name) + " is not NAMESPACE.NAME (e.g. user.sandfs.stat)";
  }
  if (name.starts_with("system.")) return "system.* xattrs are the kernel's (e.g. POSIX ACLs)";
  return std::nullopt;
}

// Walks the arguments of `sandfsd mount` and of `sandfsd vhost-user` (the same backend flags; a
// MOUNTPOINT for the one, sockets for the other).
class MountParser {
 public:
  MountParser(std::span<const std::string_view> args, bool vhost)
      : args_(args), vhost_(vhost), program_(vhost ? "sandfsd vhost-user" : "sandfsd mount") {}

  Command parse() {
    Command cmd;
    cmd.kind = vhost_ ? Command::Kind::vhost_user : Command::Kind::mount;
    MountCommand& m = cmd.mount;
    std::vector<std::string_view> positional;
    bool flags_done = false;
    for (i_ = 0; i_ < args_.size(); ++i_) {
      const std::string_view arg = args_[i_];
      if (flags_done || arg.size() < 2 || arg[0] != '-') {
        positional.push_back(arg);
        continue;
      }
      if (arg == "--") {
        flags_done = true;
        continue;
      }
      name_ = arg;
      has_value_ = false;
      if (arg.starts_with("--")) {
        if (const size_t eq = arg.find('='); eq != std::string_view::npos) {
          name_ = arg.substr(0, eq);
          value_ = arg.substr(eq + 1);
          has_value_ = true;
        }
      }
      if (auto err = apply(cmd, m)) return *err;
      if (cmd.kind == Command::Kind::mount_help || cmd.kind == Command::Kind::vhost_user_help) {
        return cmd;
      }
    }
    if (auto err = check_backend_flags(m)) return *err;
    if (vhost_) {
      if (!positional.empty()) {
        return error("sandfsd vhost-user: unexpected argument " + quoted(positional[0]) +
                     " (sockets are given with --socket-path)");
      }
      if (m.socket_paths.empty()) {
        return error("sandfsd vhost-user: needs --socket-path PATH (where the VMM connects)");
      }
      return cmd;
    }
    if (positional.empty()) return error("sandfsd mount: missing MOUNTPOINT");
    if (positional.size() > 1) {
      return error("sandfsd mount: unexpected argument " + quoted(positional[1]) +
                   " (only one MOUNTPOINT)");
    }
    m.mountpoint = std::string(positional[0]);
    return cmd;
  }

 private:
  // Flags that belong to one backend are refused with the other, whatever their order.
  std::optional<Command> check_backend_flags(MountCommand& m) const {
    const bool passthrough = m.backend == Backend::passthrough;
    const bool dual = m.backend == Backend::dual;
    for (const auto* foreign : {&memfs_flags_, &passthrough_flags_, &dual_flags_}) {
      const bool own = (foreign == &memfs_flags_ && m.backend == Backend::memfs) ||
                       (foreign == &passthrough_flags_ && passthrough) ||
                       (foreign == &dual_flags_ && dual);
      if (own || foreign->empty()) continue;
      return error(program_ + ": " + std::string(foreign->front()) +
                   " is not a flag of --backend " + std::string(to_string(m.backend)) + " (see '" +
                   program_ + " --help')");
    }
    if (dual) {
      if (!m.dual.a || !m.dual.b) {
        return error(program_ + ": --backend dual needs --a SPEC and --b SPEC (the upper and " +
                     "lower backends)");
      }
      if (m.dual.b->kind != DualSide::Kind::passthrough) {
        return error(program_ + ": --b must be passthrough:DIR (a memfs lower side is empty)");
      }
      if (!cache_given_) m.cache = CachePolicy::auto_;
      return std::nullopt;
    }
    if (!passthrough) return std::nullopt;
    if (m.passthrough.root.empty()) {
      return error(program_ +
                   ": --backend passthrough needs --root DIR (the host directory to serve)");
    }
    if (m.passthrough.stat_xattr && m.passthrough.stat_virtualization == StatVirtualization::off) {
      return error(program_ +
                   ": --stat-xattr: no record is read or written with --stat-virtualization off");
    }
    if (!cache_given_) m.cache = CachePolicy::auto_;
    return std::nullopt;
  }

  std::optional<Command> fail(const std::string& what) const {
    return error(program_ + ": " + std::string(name_) + ": " + what);
  }

  // Takes the flag's value from `--flag=value` or the next argument.
  std::optional<Command> take_value() {
    if (has_value_) return std::nullopt;
    if (i_ + 1 >= args_.size()) return fail("needs a value");
    value_ = args_[++i_];
    return std::nullopt;
  }

  std::optional<Command> no_value() const {
    if (has_value_) return fail("takes no value");
    return std::nullopt;
  }

  std::optional<Command> apply(Command& cmd, MountCommand& m) {
    const std::string_view name = name_;
    if (name == "-h" || name == "--help") {
      if (auto e = no_value()) return e;
      cmd.kind = vhost_ ? Command::Kind::vhost_user_help : Command::Kind::mount_help;
      return std::nullopt;
    }
    if (vhost_ && (name == "--no-allow-other" || name == "--no-default-permissions")) {
      return fail("is a flag of 'sandfsd mount' only (a guest kernel has its own permissions)");
    }
    if (name == "--writeback" || name == "--no-allow-other" || name == "--no-default-permissions" ||
        name == "--readonly" || name == "--follow-root-symlinks" || name == "--b-readonly") {
      if (auto e = no_value()) return e;
      if (name == "--b-readonly") {
        m.dual.b_readonly = true;
        dual_flags_.push_back(name);
      }
      if (name == "--readonly") {
        m.passthrough.readonly = true;
        passthrough_flags_.push_back(name);
      }
      if (name == "--follow-root-symlinks") {
        m.passthrough.follow_root_symlinks = true;
        passthrough_flags_.push_back(name);
      }
      if (name == "--writeback") m.writeback = true;
      if (name == "--no-allow-other") m.allow_other = false;
      if (name == "--no-default-permissions") m.default_permissions = false;
      return std::nullopt;
    }
    const bool takes_value =
        name == "--backend" || name == "--capacity" || name == "--max-inodes" ||
        name == "--cache" || name == "--threads" || name == "--log-level" ||
        name == "--max-write" || name == "--ready-fd" || name == "--root" ||
        name == "--stat-virtualization" || name == "--host-permissions" || name == "--quota" ||
        name == "--stat-xattr" || name == "--a" || name == "--b" || name == "--policy" ||
        name == "--deny" ||
        (vhost_ && (name == "--socket-path" || name == "--queues" || name == "--shared-dir"));
    if (!takes_value) {
      return error(program_ + ": unknown flag " + quoted(name) + " (see '" + program_ +
                   " --help')");
    }
    if (auto e = take_value()) return e;
    const std::string_view value = value_;

    if (name == "--backend") {
      if (value == "memfs") {
        m.backend = Backend::memfs;
      } else if (value == "passthrough") {
        m.backend = Backend::passthrough;
      } else if (value == "dual") {
        m.backend = Backend::dual;
      } else {
        return fail("unknown backend " + quoted(value) + " (available: memfs, passthrough, dual)");
      }
    } else if (name == "--a" || name == "--b") {
      DualSide side;
      if (auto why = parse_dual_side(value, side)) return fail(*why);
      (name == "--a" ? m.dual.a : m.dual.b) = std::move(side);
      dual_flags_.push_back(name);
    } else if (name == "--policy") {
      if (value != "read-b-write-a" && value != "a-only" && value != "a-fallback-b" &&
          value != "merge-a-precedence") {
        return fail("unknown policy " + quoted(value) +
                    " (read-b-write-a, a-only, a-fallback-b or merge-a-precedence)");
      }
      m.dual.policy = std::string(value);
      dual_flags_.push_back(name);
    } else if (name == "--deny") {
      DenyRule rule;
      if (auto why = parse_deny_rule(value, rule)) return fail(*why);
      m.deny.push_back(rule);
    } else if (name == "--root" || name == "--shared-dir") {
      if (value.empty()) return fail("needs a directory");
      // --shared-dir is virtiofsd's name: it implies the passthrough backend.
      if (name == "--shared-dir") m.backend = Backend::passthrough;
      m.passthrough.root = std::string(value);
      passthrough_flags_.push_back(name);
    } else if (name == "--socket-path") {
      if (value.empty()) return fail("needs a path");
      if (value.size() > 107) return fail("a Unix socket path has at most 107 bytes");
      m.socket_paths.emplace_back(value);
    } else if (name == "--queues") {
      uint64_t n = 0;
      if (auto err = parse_count(value, n)) return fail(err.message);
      if (n < 1 || n > max_queues) {
        return fail("must be between 1 and " + std::to_string(max_queues));
      }
      m.queues = static_cast<unsigned>(n);
    } else if (name == "--stat-virtualization") {
      if (!passthrough::parse_stat_virtualization(value, m.passthrough.stat_virtualization)) {
        return fail("unknown mode " + quoted(value) + " (strict, relaxed or off)");
      }
      passthrough_flags_.push_back(name);
    } else if (name == "--host-permissions") {
      if (!passthrough::parse_host_permissions(value, m.passthrough.host_permissions)) {
        return fail("unknown mode " + quoted(value) + " (private or mirror)");
      }
      passthrough_flags_.push_back(name);
    } else if (name == "--quota") {
      uint64_t bytes = 0;
      if (auto err = parse_size(value, bytes)) return fail(err.message);
      if (bytes == 0) return fail("quota must be greater than zero");
      m.passthrough.quota_bytes = bytes;
      passthrough_flags_.push_back(name);
    } else if (name == "--stat-xattr") {
      if (auto why = bad_xattr_name(value)) return fail(*why);
      m.passthrough.stat_xattr = std::string(value);
      passthrough_flags_.push_back(name);
    } else if (name == "--capacity") {
      uint64_t bytes = 0;
      if (auto err = parse_size(value, bytes)) return fail(err.message);
      if (bytes == 0) return fail("capacity must be greater than zero");
      m.capacity_bytes = bytes;
      memfs_flags_.push_back(name);
    } else if (name == "--max-inodes") {
      uint64_t n = 0;
      if (auto err = parse_count(value, n)) return fail(err.message);
      if (n == 0) return fail("must be at least 1 (the root directory counts)");
      m.max_inodes = n;
      memfs_flags_.push_back(name);
    } else if (name == "--cache") {
      if (!parse_cache_policy(value, m.cache)) {
        return fail("unknown cache policy " + quoted(value) + " (never, auto or always)");
      }
      cache_given_ = true;
    } else if (name == "--threads") {
      uint64_t n = 0;
      if (auto err = parse_count(value, n)) return fail(err.message);
      if (n < 1 || n > max_threads) {
        return fail("must be between 1 and " + std::to_string(max_threads));
      }
      m.threads = static_cast<unsigned>(n);
    } else if (name == "--log-level") {
      if (!log::parse_level(value, m.log_level)) {
        return fail("unknown level " + quoted(value) + " (trace, debug, info, warn, error or off)");
      }
    } else if (name == "--max-write") {
      uint64_t bytes = 0;
      if (auto err = parse_size(value, bytes)) return fail(err.message);
      if (bytes < 4096 || bytes > (1u << 20) || bytes % 4096 != 0) {
        return fail("must be a multiple of 4 KiB between 4K and 1M");
      }
      m.max_write = static_cast<uint32_t>(bytes);
    } else if (name == "--ready-fd") {
      uint64_t fd = 0;
      if (auto err = parse_count(value, fd)) return fail(err.message);
      if (fd > 1'000'000) return fail(quoted(value) + " is not a file descriptor number");
      m.ready_fd = static_cast<int>(fd);
    }
    return std::nullopt;
  }

  std::span<const std::string_view> args_;
  bool vhost_ = false;
  std::string program_;
  std::vector<std::string_view> memfs_flags_;        // given, in order
  std::vector<std::string_view> passthrough_flags_;  // given, in order
  std::vector<std::string_view> dual_flags_;         // given, in order
  bool cache_given_ = false;
  size_t i_ = 0;
  std::string_view name_;
  std::string_view value_;
  bool has_value_ = false;
};

// `sandfsd serve`: flags only.
Command parse_serve(std::span<const std::string_view> args) {
  Command cmd;
  cmd.kind = Command::Kind::serve;
  ServeCommand& s = cmd.serve;
  const std::string program = "sandfsd serve";
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view name = args[i];
    std::string_view value;
    bool has_value = false;
    if (name.starts_with("--")) {
      if (const size_t eq = name.find('='); eq != std::string_view::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
    }
    const auto fail = [&](const std::string& what) {
      return error(program + ": " + std::string(name) + ": " + what);
    };
    if (name == "-h" || name == "--help") {
      if (has_value) return fail("takes no value");
      return of_kind(Command::Kind::serve_help);
    }
    const bool known = name == "--data-dir" || name == "--listen" || name == "--unix-socket" ||
                       name == "--threads" || name == "--log-level" ||
                       name == "--max-connections" || name == "--max-upload" ||
                       name == "--ready-fd" || name == "--msb-prefix" ||
                       name == "--msb-default-volume";
    if (!known) {
      if (!name.starts_with("-")) {
        return error(program + ": unexpected argument " + quoted(name) + " (see '" + program +
                     " --help')");
      }
      return error(program + ": unknown flag " + quoted(name) + " (see '" + program + " --help')");
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return fail("needs a value");
      value = args[++i];
    }
    if (name == "--data-dir") {
      if (value.empty()) return fail("needs a directory");
      s.data_dir = std::string(value);
    } else if (name == "--listen") {
      // HOST:PORT, or "none" for no TCP listener (then --unix-socket is needed).
      if (value == "none") {
        s.listen.clear();
        continue;
      }
      const size_t colon = value.rfind(':');
      if (colon == std::string_view::npos || colon == 0 || colon + 1 == value.size()) {
        return fail("needs HOST:PORT (e.g. 127.0.0.1:7270), not " + quoted(value));
      }
      uint64_t port = 0;
      if (auto err = parse_count(value.substr(colon + 1), port); err || port > 65535) {
        return fail("bad port in " + quoted(value));
      }
      s.listen = std::string(value);
    } else if (name == "--unix-socket") {
      if (value.empty()) return fail("needs a path");
      if (value.size() > 107) return fail("a Unix socket path has at most 107 bytes");
      s.unix_socket = std::string(value);
    } else if (name == "--threads") {
      uint64_t n = 0;
      if (auto err = parse_count(value, n)) return fail(err.message);
      if (n < 1 || n > max_threads) {
        return fail("must be between 1 and " + std::to_string(max_threads));
      }
      s.threads = static_cast<unsigned>(n);
    } else if (name == "--max-connections") {
      uint64_t n = 0;
      if (auto err = parse_count(value, n)) return fail(err.message);
      if (n < 1 || n > 1'000'000) return fail("must be between 1 and 1000000");
      s.max_connections = static_cast<unsigned>(n);
    } else if (name == "--max-upload") {
      uint64_t bytes = 0;
      if (auto err = parse_size(value, bytes)) return fail(err.message);
      if (bytes == 0) return fail("must be greater than zero");
      s.max_upload_bytes = bytes;
    } else if (name == "--ready-fd") {
      uint64_t fd = 0;
      if (auto err = parse_count(value, fd)) return fail(err.message);
      if (fd > 1'000'000) return fail(quoted(value) + " is not a file descriptor number");
      s.ready_fd = static_cast<int>(fd);
    } else if (name == "--msb-prefix") {
      std::string why;
      auto prefix = http::parse_msb_prefix(value, why);
      if (!prefix) return fail(quoted(value) + " " + why);
      s.msb_prefix = std::move(*prefix);
    } else if (name == "--msb-default-volume") {
      if (!volumes::valid_volume_name(value)) {
        return fail(quoted(value) + " is not a volume name ([A-Za-z0-9][A-Za-z0-9._-]{0,127})");
      }
      s.msb_default_volume = std::string(value);
    } else if (name == "--log-level") {
      if (!log::parse_level(value, s.log_level)) {
        return fail("unknown level " + quoted(value) + " (trace, debug, info, warn, error or off)");
      }
    }
  }
  if (s.listen.empty() && s.unix_socket.empty()) {
    return error(program + ": --listen none needs --unix-socket PATH (nothing to listen on)");
  }
  return cmd;
}

}  // namespace

Command parse_command_line(std::span<const std::string_view> args) {
  if (args.empty()) return error("sandfsd: missing command");
  const std::string_view first = args[0];
  if (first == "-h" || first == "--help" || first == "help") return of_kind(Command::Kind::help);
  if (first == "-V" || first == "--version" || first == "version") {
    return of_kind(Command::Kind::version);
  }
  if (first == "mount") return MountParser(args.subspan(1), false).parse();
  if (first == "vhost-user") return MountParser(args.subspan(1), true).parse();
  if (first == "serve") return parse_serve(args.subspan(1));
  if (first.starts_with("-")) {
    return error("sandfsd: unknown flag " + quoted(first) + " (see 'sandfsd --help')");
  }
  return error("sandfsd: unknown command " + quoted(first) + " (see 'sandfsd --help')");
}

std::string_view to_string(Backend backend) {
  switch (backend) {
    case Backend::memfs:
      return "memfs";
    case Backend::passthrough:
      return "passthrough";
    case Backend::dual:
      return "dual";
  }
  return "?";
}

std::optional<std::string> parse_dual_side(std::string_view text, DualSide& out) {
  const size_t colon = text.find(':');
  const std::string_view kind = text.substr(0, colon);
  const std::string_view rest =
      colon == std::string_view::npos ? std::string_view{} : text.substr(colon + 1);
  if (kind == "memfs") {
    out = DualSide{};
    if (colon == std::string_view::npos) return std::nullopt;
    if (!rest.starts_with("capacity=")) {
      return quoted(text) + ": memfs takes only capacity=SIZE (e.g. memfs:capacity=1G)";
    }
    uint64_t bytes = 0;
    if (auto err = parse_size(rest.substr(9), bytes)) return err.message;
    if (bytes == 0) return std::string("capacity must be greater than zero");
    out.capacity_bytes = bytes;
    return std::nullopt;
  }
  if (kind == "passthrough") {
    if (rest.empty()) return quoted(text) + ": passthrough needs a directory (passthrough:DIR)";
    out = DualSide{};
    out.kind = DualSide::Kind::passthrough;
    out.root = std::string(rest);
    return std::nullopt;
  }
  return quoted(text) + " is not memfs[:capacity=SIZE] or passthrough:DIR";
}

std::string version_text() {
  return std::string("sandfsd ") + SANDFS_VERSION + " (FUSE protocol " +
         std::to_string(fuse::kernel_version) + "." + std::to_string(fuse::kernel_minor_version) +
         ", Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
         std::to_string(BOOST_VERSION / 100 % 1000) + ")\n";
}

std::string usage_text() {
  return R"(Usage: sandfsd COMMAND [OPTIONS]

sandfsd serves sandfs filesystems over FUSE and virtio-fs, and keeps named volumes.

Commands:
  mount       mount a filesystem on this host through /dev/fuse and serve it in the
              foreground until it is unmounted or sandfsd gets SIGINT/SIGTERM
              (see 'sandfsd mount --help')
  vhost-user  serve virtio-fs to virtual machines: listen on vhost-user sockets
              that a VMM (QEMU, cloud-hypervisor, ...) connects to, until
              SIGINT/SIGTERM (see 'sandfsd vhost-user --help')
  serve       run the volume service: named volumes, mounts into sandboxes, and
              the HTTP/JSON admin API (see 'sandfsd serve --help')
  volume      talk to a running 'sandfsd serve': create, ls, inspect, rm, put,
              get, mkdir, files (see 'sandfsd volume --help')
  mount-ls    list the mounts a running 'sandfsd serve' has made

Options:
  -h, --help     show this help and exit
  -V, --version  show the version and exit

Exit status: 0 success, 1 could not mount or serve, 2 bad command line.
)";
}

std::string mount_usage_text() {
  return R"(Usage: sandfsd mount [OPTIONS] MOUNTPOINT

Mounts a filesystem on MOUNTPOINT (an existing directory) and serves it in the
foreground. As root it mounts with mount(2); otherwise through fusermount3.
It stops, exiting 0, when the filesystem is unmounted (umount, fusermount3 -u)
or on SIGINT/SIGTERM/SIGHUP, which unmount it (lazily: open files keep it alive
until closed). A second signal exits at once.

Backend:
  --backend NAME        the filesystem to serve (default: memfs)
                          memfs        everything in memory, lost at exit
                          passthrough  a host directory (--root)
                          dual         a writable backend over a lower one (--a, --b)

memfs:
  --capacity SIZE       most bytes of file data and xattrs (default: no limit).
                        SIZE is bytes or a number with K, M, G or T (powers of
                        1024; KiB/KB/k all mean the same), e.g. 64MiB, 1G,
                        512k. Must be greater than zero.
  --max-inodes N        most files, directories and links, counting the root
                        (default: no limit)

dual (a writable upper backend A over a lower backend B that is never written;
changing a B file copies it up into A, removing one leaves a whiteout in A):
  --a SPEC              the upper side (required): memfs[:capacity=SIZE] or
                        passthrough:DIR (whiteouts are then kept in DIR as
                        hidden marker files and survive a remount)
  --b SPEC              the lower side (required): passthrough:DIR
  --b-readonly          also open B read-only, so nothing can write it
  --policy NAME         how the two are read (default: read-b-write-a)
                          read-b-write-a      both, B's object first; changing
                                              a B file copies it up
                          a-only              A alone
                          a-fallback-b        both, A's object first; B stays
                                              read-only (changing it: EROFS)
                          merge-a-precedence  both, A's object first; changing
                                              a B file copies it up

passthrough (serves a host directory; needs no root privileges):
  --root DIR            the host directory to serve (required). The guest can
                        never reach outside it: every lookup is confined to it
                        on the host, and symlinks in it are the guest's to
                        resolve.
  --stat-virtualization MODE
                        where the guest's owners, modes, file types and
                        device numbers live (default: strict)
                          strict   in an xattr record on each host file; the
                                   host filesystem must support user xattrs
                                   (checked at mount); guest symlinks, devices,
                                   fifos and sockets are regular host files
                          relaxed  the same record, but a host filesystem
                                   without xattrs shows host owners and modes;
                                   guest symlinks are real host symlinks
                          off      no record: the guest sees host owners and
                                   modes, chown fails with EPERM and mknod of
                                   devices, fifos and sockets with EOPNOTSUPP
  --host-permissions MODE
                        how host permission bits follow the guest's
                        (default: private)
                          private  host files stay 0600 and directories 0700,
                                   whatever the guest sets
                          mirror   the guest's rwx bits of files and
                                   directories are copied to the host (never
                                   setuid/setgid/sticky, never owners; the
                                   owner keeps rw / rwx). Not with
                                   --stat-virtualization off.
  --readonly            refuse every change with EROFS and write nothing to the
                        host, not even at mount (default: read-write)
  --quota SIZE          cap on the bytes of regular-file data under --root
                        (default: no quota), files that were there before the
                        mount included. A write, truncate, fallocate or
                        copy_file_range that does not fit fails whole with
                        ENOSPC; statfs shows the cap and what is left. SIZE
                        as for --capacity.
  --stat-xattr NAME     the xattr that holds the ownership record (default:
                        user.sandfs.stat). The guest can neither read nor
                        change it. user.msb.override_stat serves trees made
                        by the microsandbox runtime (same record layout).
  --follow-root-symlinks
                        follow symlinks while opening --root itself (default:
                        a symlink anywhere in the --root path is refused, so a
                        planted link cannot move the export elsewhere)

Caching:
  --cache POLICY        how much the kernel may cache (default: always for
                        memfs, auto for passthrough and dual)
                          never   no page cache, zero timeouts
                          auto    page cache until attributes change, 1 s
                          always  keep page cache across opens, 1 hour
  --writeback           let the kernel buffer writes in its page cache
                        (FUSE_WRITEBACK_CACHE; default: off)

Mount:
  --no-allow-other      only the mounting user may access the mount (default:
                        allow_other, i.e. every user; without root it needs
                        user_allow_other in /etc/fuse.conf and is dropped with
                        a warning otherwise)
  --no-default-permissions
                        don't let the kernel check permission bits (default:
                        default_permissions on)

Serving:
  --threads N           server threads, each with its own /dev/fuse fd, event
                        loop and io_uring (default: 2, at most 64)
  --max-write SIZE      largest READ/WRITE request, a multiple of 4K from 4K to
                        1M (default: 1M)
  --log-level LEVEL     trace, debug, info, warn, error or off (default: info)
  --ready-fd N          once mounted, write "ready\n" to file descriptor N and
                        close it (for scripts: the mount is usable from then
                        on; requests sent before the first reply simply wait)
  --deny OP[=ERRNO]     refuse every OP request with ERRNO before it reaches
                        the backend (repeatable). OP is a FUSE opcode name
                        (UNLINK, RMDIR, RENAME, MKDIR, MKNOD, SETXATTR, WRITE,
                        ...), ERRNO a name (EACCES) or number, default EPERM.
                        INIT, DESTROY, FORGET, BATCH_FORGET, INTERRUPT,
                        NOTIFY_REPLY, RELEASE and RELEASEDIR cannot be refused.

  -h, --help            show this help and exit

sandfsd prints one line on stderr when the mount is live:
  sandfsd: mounted memfs on /mnt (cache always, 2 threads, io_uring yes, ...)

Examples:
  sandfsd mount --backend memfs --capacity 1G --threads 2 /mnt/scratch
  sandfsd mount --backend passthrough --root /srv/share --quota 10G /mnt/share
  sandfsd mount --backend dual --a memfs:capacity=1G --b passthrough:/srv/base \
      --b-readonly /mnt/work
)";
}

std::string default_data_dir() {
  if (::geteuid() == 0) return "/var/lib/sandfs";
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/sandfs";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && home[0] != '\0' ? home : ".") + "/.local/share/sandfs";
}

std::string serve_usage_text() {
  return R"TXT(Usage: sandfsd serve [OPTIONS]

Runs the volume service: keeps named volumes under the data directory, mounts
them (and host directories and scratch space) into sandboxes over vhost-user or
/dev/fuse, and serves the HTTP/JSON admin API (docs/openapi.yaml). Every request
but GET /healthz needs the bearer token kept in DATA_DIR/token (made at the
first start, mode 0600):

  curl -H "Authorization: Bearer $(cat DATA_DIR/token)" \
       http://127.0.0.1:7270/v1/volumes

It runs until SIGINT/SIGTERM/SIGHUP, which stop accepting requests, remove
every mount and exit 0.

  --data-dir DIR        where volumes, the catalog and the token live (default:
                        /var/lib/sandfs for root, else
                        ${XDG_DATA_HOME:-~/.local/share}/sandfs)
  --listen HOST:PORT    the TCP address of the API (default: 127.0.0.1:7270;
                        port 0 picks a free one; 'none': no TCP listener)
  --unix-socket PATH    also serve the API on this Unix socket (mode 0660)
  --threads N           event-loop threads shared by the API and the mounts,
                        each with its own io_uring (default: 2, at most 64)
  --max-connections N   API connections open at once; the next one is answered
                        503 and closed (default: 512)
  --max-upload SIZE     largest file a PUT may write, streamed to the volume in
                        chunks (default: 16G; JSON bodies are at most 1 MiB)
  --log-level LEVEL     trace, debug, info, warn, error or off (default: info)
  --ready-fd N          once the API listens, write "ready\n" to file
                        descriptor N and close it
  --msb-prefix PATH     serve the microsandbox SDKs' volume API under PATH
                        (default: /msb, so an SDK's cloud URL is
                        http://HOST:PORT/msb; 'none': not served;
                        docs/msb-compat.md)
  --msb-default-volume NAME
                        the volume GET PATH/v1/volumes/default answers with
                        (default: none, a 404 volume_not_found)
  -h, --help            show this help and exit

sandfsd prints one line on stderr when it is ready:
  sandfsd: serving the API on 127.0.0.1:7270 (data /var/lib/sandfs, token
  /var/lib/sandfs/token, ...)
)TXT";
}

std::string vhost_user_usage_text() {
  return R"(Usage: sandfsd vhost-user --socket-path PATH [OPTIONS]

Serves a filesystem to virtual machines as a vhost-user-fs device (virtio-fs,
device type 26). sandfsd creates each --socket-path and listens; a VMM connects
(QEMU: -chardev socket,id=fs0,path=PATH -device vhost-user-fs-pci,chardev=fs0,
tag=TAG), and the guest mounts it with 'mount -t virtiofs TAG /mnt'. When a VMM
disconnects, sandfsd keeps listening for the next one; each connection gets a
fresh instance of the backend (a memfs starts empty, a passthrough root is
opened again). It runs until SIGINT/SIGTERM/SIGHUP.

  --socket-path PATH    a Unix socket to listen on (required; repeat it to
                        serve several VMs from one process, each socket with
                        its own backend instance)
  --queues N            request queues per device (default: 1, at most 64);
                        the VMM's num-request-queues must not be larger
  --shared-dir DIR      the same as --backend passthrough --root DIR (the name
                        virtiofsd uses)

Backend, memfs, passthrough and caching flags: as for 'sandfsd mount' (see
'sandfsd mount --help'): --backend, --capacity, --max-inodes, --root,
--stat-virtualization, --host-permissions, --readonly, --quota, --stat-xattr,
--follow-root-symlinks, --cache, --writeback, --deny.

Serving:
  --threads N           server threads, each with its own event loop and
                        io_uring; queues are spread over them (default: 2)
  --max-write SIZE      largest READ/WRITE request (default: 1M)
  --log-level LEVEL     trace, debug, info, warn, error or off (default: info)
  --ready-fd N          once every socket listens, write "ready\n" to file
                        descriptor N and close it

Example:
  sandfsd vhost-user --socket-path /run/sandfs/vm1.sock --shared-dir /srv/vm1
)";
}

}  // namespace sandfs::cli
