// sandfsd: the sandfs server command.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "cli/mount_command.hpp"
#include "cli/options.hpp"
#include "cli/serve_command.hpp"
#include "cli/vhost_user_command.hpp"
#include "cli/volume_commands.hpp"

int main(int argc, char** argv) {
  using sandfs::cli::Command;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  // Client commands of a running `sandfsd serve` parse their own arguments.
  if (!args.empty() && args[0] == "volume")
    return sandfs::cli::run_volume_command({args.begin() + 1, args.end()});
  if (!args.empty() && args[0] == "mount-ls")
    return sandfs::cli::run_mount_ls_command({args.begin() + 1, args.end()});
  const Command cmd = sandfs::cli::parse_command_line(args);
  switch (cmd.kind) {
    case Command::Kind::help:
      std::fputs(sandfs::cli::usage_text().c_str(), stdout);
      return sandfs::cli::exit_ok;
    case Command::Kind::version:
      std::fputs(sandfs::cli::version_text().c_str(), stdout);
      return sandfs::cli::exit_ok;
    case Command::Kind::mount_help:
      std::fputs(sandfs::cli::mount_usage_text().c_str(), stdout);
      return sandfs::cli::exit_ok;
    case Command::Kind::mount:
      return sandfs::cli::run_mount(cmd.mount);
    case Command::Kind::vhost_user_help:
      std::fputs(sandfs::cli::vhost_user_usage_text().c_str(), stdout);
      return sandfs::cli::exit_ok;
    case Command::Kind::vhost_user:
      return sandfs::cli::run_vhost_user(cmd.mount);
    case Command::Kind::serve_help:
      std::fputs(sandfs::cli::serve_usage_text().c_str(), stdout);
      return sandfs::cli::exit_ok;
    case Command::Kind::serve:
      return sandfs::cli::run_serve(cmd.serve);
    case Command::Kind::error:
      break;
  }
  std::fprintf(stderr, "%s\n", cmd.error.c_str());
  if (args.empty()) std::fputs(sandfs::cli::usage_text().c_str(), stderr);
  return sandfs::cli::exit_usage;
}
