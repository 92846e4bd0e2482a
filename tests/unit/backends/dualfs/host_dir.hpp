// Host directories for DualFs unit tests that put a PassthroughFs on either side.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "backends/passthrough/passthrough.hpp"

namespace sandfs::dualfs::testing {

class HostDir {
 public:
  HostDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/sandfs-dual-XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~HostDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }
  bool has(std::string_view rel) const {
    struct stat st {};
    return ::lstat((path_ + "/" + std::string(rel)).c_str(), &st) == 0;
  }

 private:
  std::string path_;
};

inline std::shared_ptr<Filesystem> passthrough_at(const std::string& dir) {
  passthrough::PassthroughConfig c;
  c.root = dir;
  c.cache = CachePolicy::never;
  passthrough::MakeResult made = passthrough::make_passthrough(c);
  INFO(made.error);
  REQUIRE(made);
  return made.fs;
}

}  // namespace sandfs::dualfs::testing
