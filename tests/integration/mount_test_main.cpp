// Entry point of the mount tests (memfs_mount_test, passthrough_mount_test). They need root
// (mount(2), chown, other users' views) and /dev/fuse; without either the run exits 77, which
// CTest reports as skipped (SKIP_RETURN_CODE). Listing the tests (CTest discovery at build time)
// works everywhere.
//
//   memfs_mount_test --sandfsd PATH [catch2 arguments...]     (or SANDFSD=PATH in the environment)
#define CATCH_CONFIG_RUNNER
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "mount_fixture.hpp"

int main(int argc, char** argv) {
  std::vector<char*> args;
  bool listing = false;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--sandfsd" && i + 1 < argc) {
      sandfs::it::sandfsd_path() = argv[++i];
      continue;
    }
    if (a.starts_with("--list")) listing = true;
    args.push_back(argv[i]);
  }
  if (sandfs::it::sandfsd_path().empty()) {
    if (const char* env = std::getenv("SANDFSD")) sandfs::it::sandfsd_path() = env;
  }

  if (!listing) {
    if (::geteuid() != 0) {
      std::fprintf(stderr, "SKIP: the mount tests need root\n");
      return 77;
    }
    if (::access("/dev/fuse", R_OK | W_OK) != 0 && !sandfs::it::reference_tmpfs()) {
      std::fprintf(stderr, "SKIP: /dev/fuse is not available\n");
      return 77;
    }
    if (!sandfs::it::reference_tmpfs() &&
        (sandfs::it::sandfsd_path().empty() ||
         ::access(sandfs::it::sandfsd_path().c_str(), X_OK) != 0)) {
      std::fprintf(stderr, "FAIL: no sandfsd binary (pass --sandfsd PATH or set SANDFSD)\n");
      return 2;
    }
  }
  // Modes in the tests are exact: a fixed umask makes them independent of the caller's.
  ::umask(022);
  return Catch::Session().run(static_cast<int>(args.size()), args.data());
}
