#include "http/token.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "core/unique_fd.hpp"

namespace sandfs::http {

namespace {

using volumes::Error;
using volumes::ErrorCode;

constexpr size_t token_bytes = 32;

Error host_error(const std::filesystem::path& path, std::string_view what, int err) {
  return Error{ErrorCode::internal,
               "cannot " + std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

bool is_token(std::string_view s) {
  if (s.size() != token_bytes * 2) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

volumes::Outcome<std::string> read_token(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return host_error(path, "open", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return host_error(path, "stat", errno);
  if (!S_ISREG(st.st_mode)) {
    return Error{ErrorCode::internal, path.string() + " is not a regular file"};
  }
  if ((st.st_mode & 077) != 0) {
    return Error{ErrorCode::internal,
                 path.string() + " can be read by other users (chmod 600 it, or remove it and " +
                     "restart to make a new token)"};
  }
  std::array<char, 256> buf{};
  size_t n = 0;
  while (n < buf.size()) {
    const ssize_t r = ::read(fd.get(), buf.data() + n, buf.size() - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return host_error(path, "read", errno);
    if (r == 0) break;
    n += static_cast<size_t>(r);
  }
  std::string_view text(buf.data(), n);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.remove_suffix(1);
  if (!is_token(text)) {
    return Error{ErrorCode::internal,
                 path.string() + " does not hold a token (64 hex digits); remove it and restart " +
                     "to make a new one"};
  }
  return std::string(text);
}

}  // namespace

std::string random_token() {
  std::array<unsigned char, token_bytes> raw{};
  size_t n = 0;
  while (n < raw.size()) {
    const ssize_t r = ::getrandom(raw.data() + n, raw.size() - n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    n += static_cast<size_t>(r);
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(token_bytes * 2);
  for (unsigned char b : raw) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

volumes::Outcome<std::string> load_or_create_token(const std::filesystem::path& data_dir) {
  const std::filesystem::path path = data_dir / token_file_name;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return read_token(path);
  if (errno != ENOENT) return host_error(path, "stat", errno);

  std::string token;
  try {
    token = random_token();
  } catch (const std::exception& e) {
    return Error{ErrorCode::internal, e.what()};
  }
  const std::filesystem::path tmp =
      data_dir / (".token." + std::to_string(::getpid()) + "." + token.substr(0, 8));
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return host_error(tmp, "create", errno);
    const std::string line = token + "\n";
    // fchmod: the umask may have taken bits 0600 did not ask for away, never added any, but a
    // token file must be exactly 0600.
    if (::fchmod(fd.get(), 0600) != 0 ||
        ::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
        ::fsync(fd.get()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return host_error(tmp, "write", err);
    }
  }
  const int linked = ::link(tmp.c_str(), path.c_str());
  const int link_err = errno;
  ::unlink(tmp.c_str());
  if (linked != 0) {
    if (link_err == EEXIST) return read_token(path);  // another start made it first
    return host_error(path, "create", link_err);
  }
  UniqueFd dir(::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) ::fsync(dir.get());
  return token;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the longer string is looked at; the length difference is folded in.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool bearer_matches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() < scheme.size() || token.empty()) return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i]) return false;
  }
  std::string_view given = authorization.substr(scheme.size());
  while (!given.empty() && given.front() == ' ')
    given.remove_prefix(1);
  while (!given.empty() && (given.back() == ' ' || given.back() == '\t'))
    given.remove_suffix(1);
  return constant_time_equal(given, token);
}

}  // namespace sandfs::http
