// Small host-side file helpers shared by the integration tests that prepare and inspect host
// directories around a mount: a temporary directory removed at scope exit, whole-file write and
// read, and an existence check that does not follow symlinks.
#pragma once

#include <sys/stat.h>

#include <stdlib.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>

namespace sandfs::it {

class HostDir {
 public:
  // Makes /tmp/sandfs-it-TAG-XXXXXX.
  explicit HostDir(const char* tag) {
    std::string pattern = std::string("/tmp/sandfs-it-") + tag + "-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~HostDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  HostDir(const HostDir&) = delete;
  HostDir& operator=(const HostDir&) = delete;

  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes content to path (creating missing parent directories), replacing what was there.
inline void put(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

// The whole content of path ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace sandfs::it
