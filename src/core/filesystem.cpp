#include "core/filesystem.hpp"

#include "core/protocol/fuse_kernel.hpp"

namespace sandfs {

namespace {
constexpr Errno not_supported{ENOSYS};
}

std::chrono::nanoseconds cache_timeout(CachePolicy policy) {
  using namespace std::chrono_literals;
  switch (policy) {
    case CachePolicy::never:
      return 0s;
    case CachePolicy::auto_:
      return 1s;
    case CachePolicy::always:
      return 1h;
  }
  return 0s;
}

uint32_t cache_open_flags(CachePolicy policy, bool dir) {
  switch (policy) {
    case CachePolicy::never:
      return fuse::FOPEN_DIRECT_IO;
    case CachePolicy::auto_:
      return 0;
    case CachePolicy::always:
      return dir ? fuse::FOPEN_CACHE_DIR : fuse::FOPEN_KEEP_CACHE;
  }
  return 0;
}

bool parse_cache_policy(std::string_view text, CachePolicy& out) {
  if (text == "never") {
    out = CachePolicy::never;
  } else if (text == "auto") {
    out = CachePolicy::auto_;
  } else if (text == "always") {
    out = CachePolicy::always;
  } else {
    return false;
  }
  return true;
}

std::string_view to_string(CachePolicy policy) {
  switch (policy) {
    case CachePolicy::never:
      return "never";
    case CachePolicy::auto_:
      return "auto";
    case CachePolicy::always:
      return "always";
  }
  return "auto";
}

Task<Status> Filesystem::init(const SessionParams&) {
  co_return ok_status();
}
Task<void> Filesystem::destroy() {
  co_return;
}

Task<Result<Entry>> Filesystem::lookup(const RequestContext&, InodeId, std::string_view) {
  co_return not_supported;
}
void Filesystem::forget(InodeId, uint64_t) {}

Task<Result<AttrReply>> Filesystem::getattr(const RequestContext&, InodeId,
                                            std::optional<HandleId>) {
  co_return not_supported;
}
Task<Result<AttrReply>> Filesystem::setattr(const RequestContext&, InodeId, const SetAttrIn&) {
  co_return not_supported;
}
Task<Result<std::string>> Filesystem::readlink(const RequestContext&, InodeId) {
  co_return not_supported;
}
Task<Result<Entry>> Filesystem::mknod(const RequestContext&, InodeId, std::string_view, uint32_t,
                                      uint32_t, uint32_t) {
  co_return not_supported;
}
Task<Result<Entry>> Filesystem::mkdir(const RequestContext&, InodeId, std::string_view, uint32_t,
                                      uint32_t) {
  co_return not_supported;
}
Task<Result<Entry>> Filesystem::symlink(const RequestContext&, InodeId, std::string_view,
                                        std::string_view) {
  co_return not_supported;
}
Task<Result<Entry>> Filesystem::link(const RequestContext&, InodeId, InodeId, std::string_view) {
  co_return not_supported;
}
Task<Status> Filesystem::unlink(const RequestContext&, InodeId, std::string_view) {
  co_return not_supported;
}
Task<Status> Filesystem::rmdir(const RequestContext&, InodeId, std::string_view) {
  co_return not_supported;
}
Task<Status> Filesystem::rename(const RequestContext&, InodeId, std::string_view, InodeId,
                                std::string_view, uint32_t) {
  co_return not_supported;
}
Task<Result<OpenReply>> Filesystem::open(const RequestContext&, InodeId, uint32_t, bool) {
  co_return not_supported;
}
Task<Result<CreateReply>> Filesystem::create(const RequestContext&, InodeId, std::string_view,
                                             uint32_t, uint32_t, uint32_t, bool) {
  co_return not_supported;
}
Task<Result<size_t>> Filesystem::read(const RequestContext&, InodeId, HandleId, uint64_t, uint32_t,
                                      const IoVecs&) {
  co_return not_supported;
}
Task<Result<size_t>> Filesystem::write(const RequestContext&, InodeId, HandleId, uint64_t,
                                       const IoVecs&, bool) {
  co_return not_supported;
}
Task<Status> Filesystem::flush(const RequestContext&, InodeId, HandleId, uint64_t) {
  co_return not_supported;
}
Task<Status> Filesystem::release(const RequestContext&, InodeId, HandleId, uint32_t) {
  co_return ok_status();
}
Task<Status> Filesystem::fsync(const RequestContext&, InodeId, HandleId, bool) {
  co_return not_supported;
}
Task<Result<OpenReply>> Filesystem::opendir(const RequestContext&, InodeId, uint32_t) {
  co_return OpenReply{};
}
Task<Status> Filesystem::readdir(const RequestContext&, InodeId, HandleId, uint64_t, DirSink&) {
  co_return not_supported;
}
Task<Status> Filesystem::readdirplus(const RequestContext&, InodeId, HandleId, uint64_t,
                                     DirPlusSink&) {
  co_return not_supported;
}
Task<Status> Filesystem::releasedir(const RequestContext&, InodeId, HandleId) {
  co_return ok_status();
}
Task<Status> Filesystem::fsyncdir(const RequestContext&, InodeId, HandleId, bool) {
  co_return not_supported;
}
Task<Result<StatFs>> Filesystem::statfs(const RequestContext&, InodeId) {
  co_return StatFs{};
}
Task<Status> Filesystem::setxattr(const RequestContext&, InodeId, std::string_view,
                                  std::span<const char>, uint32_t) {
  co_return not_supported;
}
Task<Result<XattrReply>> Filesystem::getxattr(const RequestContext&, InodeId, std::string_view,
                                              uint32_t) {
  co_return not_supported;
}
Task<Result<XattrReply>> Filesystem::listxattr(const RequestContext&, InodeId, uint32_t) {
  co_return not_supported;
}
Task<Status> Filesystem::removexattr(const RequestContext&, InodeId, std::string_view) {
  co_return not_supported;
}
Task<Status> Filesystem::access(const RequestContext&, InodeId, uint32_t) {
  co_return not_supported;
}
Task<Status> Filesystem::fallocate(const RequestContext&, InodeId, HandleId, uint64_t, uint64_t,
                                   uint32_t) {
  co_return not_supported;
}
Task<Result<uint64_t>> Filesystem::lseek(const RequestContext&, InodeId, HandleId, uint64_t,
                                         uint32_t) {
  co_return not_supported;
}
Task<Result<size_t>> Filesystem::copy_file_range(const RequestContext&, InodeId, HandleId, uint64_t,
                                                 InodeId, HandleId, uint64_t, uint64_t, uint64_t) {
  co_return not_supported;
}

int Filesystem::host_fd(InodeId, HandleId) const {
  return -1;
}
Task<Result<size_t>> Filesystem::copy_from_host_fd(const RequestContext&, int, uint64_t, InodeId,
                                                   HandleId, uint64_t, uint64_t) {
  co_return Errno{EXDEV};
}

}  // namespace sandfs
