#include "passthrough_fixture.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <catch2/catch.hpp>

#include "sys_checks.hpp"

namespace sandfs::it {

namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out += static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get_u32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}

std::string make_temp_dir(const char* prefix) {
  std::string tmpl = std::string(prefix) + "XXXXXX";
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

uint64_t fnv1a(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::vector<std::string> host_xattr_names(const std::string& path) {
  std::string buf(65536, '\0');
  const ssize_t n = ::llistxattr(path.c_str(), buf.data(), buf.size());
  if (n < 0) return {"<llistxattr " + errno_name(errno) + ">"};
  std::vector<std::string> names;
  for (size_t at = 0; at < static_cast<size_t>(n);) {
    const std::string name(buf.c_str() + at);
    names.push_back(name);
    at += name.size() + 1;
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::string default_record_name() {
  return "user.sandfs.stat";
}

std::string encode_record(const StatRecord& r) {
  std::string out;
  out += static_cast<char>(r.version & 0xff);
  out.append(3, '\0');
  put_u32(out, r.uid);
  put_u32(out, r.gid);
  put_u32(out, r.mode);
  put_u32(out, r.rdev);
  return out;
}

StatRecord decode_record(std::string_view bytes) {
  REQUIRE(bytes.size() == stat_record_size);
  CHECK(bytes[1] == 0);
  CHECK(bytes[2] == 0);
  CHECK(bytes[3] == 0);
  StatRecord r;
  r.version = static_cast<unsigned char>(bytes[0]);
  r.uid = get_u32(bytes, 4);
  r.gid = get_u32(bytes, 8);
  r.mode = get_u32(bytes, 12);
  r.rdev = get_u32(bytes, 16);
  return r;
}

uint32_t fuse_encode_dev(dev_t dev) {
  const uint32_t maj = ::major(dev);
  const uint32_t min = ::minor(dev);
  return (min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12);
}

std::optional<std::string> host_xattr(const std::string& path, const std::string& name) {
  std::string buf(4096, '\0');
  const ssize_t n = ::lgetxattr(path.c_str(), name.c_str(), buf.data(), buf.size());
  if (n < 0 && errno == ENODATA) return std::nullopt;
  if (n < 0) FAIL("lgetxattr " << path << " " << name << ": " << errno_name(errno));
  buf.resize(static_cast<size_t>(n));
  return buf;
}

void set_host_xattr(const std::string& path, const std::string& name, std::string_view value) {
  SYS(::lsetxattr(path.c_str(), name.c_str(), value.data(), value.size(), 0));
}

std::string tree_fingerprint(const std::string& dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> lines;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string p = it->path().string();
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) {
      lines.push_back(p + " <lstat " + errno_name(errno) + ">");
      continue;
    }
    std::ostringstream line;
    line << p.substr(dir.size()) << " mode=" << std::oct << st.st_mode << std::dec
         << " owner=" << st.st_uid << ":" << st.st_gid << " size=" << st.st_size
         << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec
         << " ctime=" << st.st_ctim.tv_sec << "." << st.st_ctim.tv_nsec << " nlink=" << st.st_nlink;
    for (const auto& x : host_xattr_names(p))
      line << " xattr=" << x;
    if (S_ISREG(st.st_mode)) {
      line << " data=" << std::hex << fnv1a(read_file(p)) << std::dec;
    } else if (S_ISLNK(st.st_mode)) {
      line << " -> " << fs::read_symlink(p, ec).string();
    }
    lines.push_back(line.str());
  }
  if (ec) lines.push_back("<walk error " + ec.message() + ">");
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

HostTree::HostTree(std::optional<std::pair<uid_t, gid_t>> owner) {
  base_ = make_temp_dir("/tmp/sandfs-ptit-host-");
  SYS(::chmod(base_.c_str(), 0755));
  SYS(::mkdir(root().c_str(), 0755));
  SYS(::mkdir(outside().c_str(), 0755));
  write_file(outside("canary"), "outside the root: never to be read or changed through the mount");
  SYS(::mkdir(outside("sub").c_str(), 0700));
  write_file(outside("sub/secret"), "secret");
  if (owner) SYS(::chown(root().c_str(), owner->first, owner->second));
}

HostTree::~HostTree() {
  if (base_.empty()) return;
  const char* keep = std::getenv("SANDFS_IT_KEEP_HOST");
  if (keep && *keep == '1') return;
  std::error_code ec;
  std::filesystem::remove_all(base_, ec);
}

std::string HostTree::root(std::string_view rel) const {
  std::string p = base_ + "/root";
  if (!rel.empty()) (p += '/') += rel;
  return p;
}

std::string HostTree::outside(std::string_view rel) const {
  std::string p = base_ + "/outside";
  if (!rel.empty()) (p += '/') += rel;
  return p;
}

namespace {

MountSpec mount_spec(const PassthroughSpec& spec, const HostTree& tree) {
  if (spec.seed) spec.seed(tree);
  MountSpec m;
  m.backend = "passthrough";
  m.flags = {"--root", tree.root()};
  m.flags.insert(m.flags.end(), spec.flags.begin(), spec.flags.end());
  m.launcher = spec.launcher;
  m.dir_prefix = "/tmp/sandfs-ptit-mnt-";
  if (spec.server_user) m.mountpoint_owner = spec.server_user->first;
  return m;
}

}  // namespace

PassthroughMount::PassthroughMount(std::vector<std::string> flags)
    : PassthroughMount(PassthroughSpec{.flags = std::move(flags)}) {}

PassthroughMount::PassthroughMount(PassthroughSpec spec)
    : tree_(spec.server_user), fs_(mount_spec(spec, tree_)) {}

StatRecord PassthroughMount::record(std::string_view rel, const std::string& name) const {
  const auto bytes = host_xattr(host(rel), name);
  INFO("host file " << host(rel) << ", xattr " << name);
  REQUIRE(bytes.has_value());
  return decode_record(*bytes);
}

bool PassthroughMount::has_record(std::string_view rel, const std::string& name) const {
  return host_xattr(host(rel), name).has_value();
}

}  // namespace sandfs::it
