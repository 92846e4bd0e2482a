// The bearer token file and comparisons (src/http/token.hpp).
#include "http/token.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <catch2/catch.hpp>

using namespace sandfs::http;

namespace {
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/sandfs-token-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};
}  // namespace

TEST_CASE("random tokens are 64 hex digits and differ", "[http][token]") {
  std::set<std::string> seen;
  for (int i = 0; i < 32; ++i) {
    const std::string t = random_token();
    CHECK(t.size() == 64);
    CHECK(t.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(t);
  }
  CHECK(seen.size() == 32);
}

TEST_CASE("the token file is made 0600 once and reused", "[http][token]") {
  TempDir dir;
  const mode_t old_umask = ::umask(0);  // a permissive umask must not widen the file
  auto first = load_or_create_token(dir.path);
  ::umask(old_umask);
  REQUIRE(first.ok());
  struct stat st {};
  REQUIRE(::stat((dir.path / "token").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(S_ISREG(st.st_mode));
  auto second = load_or_create_token(dir.path);
  REQUIRE(second.ok());
  CHECK(*second == *first);
  // Nothing but the token file is left behind.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path))
    ++entries;
  CHECK(entries == 1);
}

TEST_CASE("a token file others can read or that holds no token is refused", "[http][token]") {
  TempDir dir;
  const auto file = dir.path / "token";
  {
    std::ofstream out(file);
    out << "not a token\n";
  }
  ::chmod(file.c_str(), 0600);
  auto garbage = load_or_create_token(dir.path);
  REQUIRE_FALSE(garbage.ok());
  CHECK_THAT(garbage.error().message, Catch::Contains("does not hold a token"));
  {
    std::ofstream out(file, std::ios::trunc);
    out << random_token() << "\n";
  }
  ::chmod(file.c_str(), 0644);
  auto open_to_all = load_or_create_token(dir.path);
  REQUIRE_FALSE(open_to_all.ok());
  CHECK_THAT(open_to_all.error().message, Catch::Contains("other users"));
  std::filesystem::remove(file);
  std::filesystem::create_symlink("/etc/hostname", file);
  CHECK_FALSE(load_or_create_token(dir.path).ok());
}

TEST_CASE("bearer header matching", "[http][token]") {
  const std::string t = random_token();
  CHECK(bearer_matches("Bearer " + t, t));
  CHECK(bearer_matches("bearer " + t, t));
  CHECK(bearer_matches("BEARER  " + t + " ", t));
  CHECK_FALSE(bearer_matches("Bearer " + t.substr(1), t));
  CHECK_FALSE(bearer_matches("Bearer " + t + "0", t));
  CHECK_FALSE(bearer_matches("Basic " + t, t));
  CHECK_FALSE(bearer_matches(t, t));
  CHECK_FALSE(bearer_matches("", t));
  CHECK_FALSE(bearer_matches("Bearer ", ""));
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "ab"));
  CHECK_FALSE(constant_time_equal("", "a"));
  CHECK(constant_time_equal("", ""));
}
