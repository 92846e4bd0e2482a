// `sandfsd volume create|ls|inspect|rm|put|get|mkdir|files` and `sandfsd mount-ls`: clients of a
// running `sandfsd serve`, human tables by default and the server's JSON with --json.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sandfs::cli {

// `args` starts after the subcommand word ("volume" or "mount-ls"). Returns the exit code.
int run_volume_command(const std::vector<std::string_view>& args);
int run_mount_ls_command(const std::vector<std::string_view>& args);

std::string volume_usage_text();

}  // namespace sandfs::cli
