// The API's bearer token: 32 random bytes as 64 lowercase hex digits, made at the first start
// and kept in <data_dir>/token (mode 0600) so clients on the host can read it once and reuse it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "volumes/error.hpp"

namespace sandfs::http {

inline constexpr std::string_view token_file_name = "token";

// 64 hex digits from getrandom(2).
std::string random_token();

// Reads <data_dir>/token, or creates it when absent. The new file is written to a private
// temporary (O_CREAT|O_EXCL, 0600), synced, and hard-linked onto the name, which fails when
// another start won the race: a token file is never seen empty or half-written, and two
// servers starting at once end up with the same token. An existing file that is not 64 hex
// digits, is not a regular file, or can be read by others is refused (internal), never
// silently replaced: clients hold that token.
volumes::Outcome<std::string> load_or_create_token(const std::filesystem::path& data_dir);

// Compares in time that depends only on the lengths, not on where the first difference is.
bool constant_time_equal(std::string_view a, std::string_view b);

// Whether an Authorization header value is "Bearer <token>" (scheme case-insensitive).
bool bearer_matches(std::string_view authorization, std::string_view token);

}  // namespace sandfs::http
