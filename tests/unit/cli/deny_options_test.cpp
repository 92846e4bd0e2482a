// `sandfsd mount --deny OP[=ERRNO]` and its vhost-user twin.
#include <cerrno>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/options.hpp"
#include "core/protocol/fuse_kernel.hpp"

using namespace sandfs;
using namespace sandfs::cli;

namespace {

Command parse(std::string_view command, std::vector<std::string_view> args) {
  args.insert(args.begin(), command);
  return parse_command_line(args);
}

}  // namespace

TEST_CASE("mount --deny is repeatable and keeps its rules in order", "[cli][deny]") {
  Command c =
      parse("mount", {"--deny", "UNLINK=EACCES", "--deny=setxattr", "--deny", "MKNOD=30", "/mnt"});
  INFO(c.error);
  REQUIRE(c.kind == Command::Kind::mount);
  REQUIRE(c.mount.deny.size() == 3);
  CHECK(c.mount.deny[0].opcode == fuse::FUSE_UNLINK);
  CHECK(c.mount.deny[0].error == EACCES);
  CHECK(c.mount.deny[1].opcode == fuse::FUSE_SETXATTR);
  CHECK(c.mount.deny[1].error == EPERM);
  CHECK(c.mount.deny[2].opcode == fuse::FUSE_MKNOD);
  CHECK(c.mount.deny[2].error == 30);

  Command v = parse("vhost-user", {"--socket-path", "/tmp/s.sock", "--deny", "RMDIR"});
  INFO(v.error);
  REQUIRE(v.kind == Command::Kind::vhost_user);
  REQUIRE(v.mount.deny.size() == 1);
  CHECK(v.mount.deny[0].opcode == fuse::FUSE_RMDIR);
}

TEST_CASE("mount --deny errors name the flag and what is wrong", "[cli][deny]") {
  Command c = parse("mount", {"--deny", "UNLNK", "/mnt"});
  REQUIRE(c.kind == Command::Kind::error);
  CHECK(c.error.find("--deny: unknown operation 'UNLNK'") != std::string::npos);
  c = parse("mount", {"--deny", "FORGET", "/mnt"});
  REQUIRE(c.kind == Command::Kind::error);
  CHECK(c.error.find("--deny: FORGET cannot be refused") != std::string::npos);
  c = parse("mount", {"--deny", "RELEASE=EIO", "/mnt"});
  REQUIRE(c.kind == Command::Kind::error);
  CHECK(c.error.find("RELEASE cannot be refused") != std::string::npos);
  c = parse("mount", {"--deny", "UNLINK=EWHAT", "/mnt"});
  REQUIRE(c.kind == Command::Kind::error);
  CHECK(c.error.find("--deny: unknown errno 'EWHAT'") != std::string::npos);
  c = parse("mount", {"/mnt", "--deny"});
  CHECK(c.kind == Command::Kind::error);
}

TEST_CASE("mount help describes --deny", "[cli][deny]") {
  const std::string help = mount_usage_text();
  CHECK(help.find("--deny OP[=ERRNO]") != std::string::npos);
  CHECK(vhost_user_usage_text().find("--deny") != std::string::npos);
}
