// CountingFs: forwards every operation to another Filesystem, counting the lookup references it
// hands out and takes back per inode, and optionally yielding to the event loop before each
// read and create (so concurrent DualFs requests really interleave over an in-memory child).
// With `read_only` it answers every change (and access(W_OK)) with EROFS, as a PassthroughFs
// opened read-only does, and counts the attempts.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/filesystem.hpp"

namespace sandfs::dualfs::testing {

class CountingFs final : public Filesystem {
 public:
  explicit CountingFs(std::shared_ptr<Filesystem> inner) : inner_(std::move(inner)) {}

  bool yield = false;  // suspend before reads and creates
  uint64_t reads = 0;
  uint64_t writes = 0;
  bool read_only = false;
  uint64_t refused = 0;                // changes refused under read_only
  uint64_t host_copies = 0;            // copy_from_host_fd calls
  uint64_t setattrs = 0;               // setattr calls
  uint64_t lseeks = 0;                 // lseek calls
  int refuse_host_copy = 0;            // an errno copy_from_host_fd answers instead of copying
  std::function<void()> on_host_copy;  // called at each copy_from_host_fd

  // References handed out and not forgotten, per inode (the root excluded).
  std::map<InodeId, int64_t> outstanding() const {
    std::lock_guard lock(mu_);
    std::map<InodeId, int64_t> out;
    for (const auto& [ino, n] : refs_)
      if (n != 0 && ino != 1) out[ino] = n;
    return out;
  }
  int64_t refs(InodeId ino) const {
    std::lock_guard lock(mu_);
    auto it = refs_.find(ino);
    return it == refs_.end() ? 0 : it->second;
  }

  Capabilities capabilities() const override { return inner_->capabilities(); }
  Task<Status> init(const SessionParams& p) override { co_return co_await inner_->init(p); }
  Task<void> destroy() override { co_await inner_->destroy(); }

  Task<Result<Entry>> lookup(const RequestContext& c, InodeId p, std::string_view n) override {
    co_return counted(co_await inner_->lookup(c, p, n));
  }
  void forget(InodeId ino, uint64_t n) override {
    {
      std::lock_guard lock(mu_);
      refs_[ino] -= static_cast<int64_t>(n);
    }
    inner_->forget(ino, n);
  }
  Task<Result<AttrReply>> getattr(const RequestContext& c, InodeId i,
                                  std::optional<HandleId> fh) override {
    co_return co_await inner_->getattr(c, i, fh);
  }
  Task<Result<AttrReply>> setattr(const RequestContext& c, InodeId i,
                                  const SetAttrIn& in) override {
    ++setattrs;
    if (read_only) co_return refuse();
    co_return co_await inner_->setattr(c, i, in);
  }
  Task<Result<std::string>> readlink(const RequestContext& c, InodeId i) override {
    co_return co_await inner_->readlink(c, i);
  }
  Task<Result<Entry>> mknod(const RequestContext& c, InodeId p, std::string_view n, uint32_t m,
                            uint32_t r, uint32_t u) override {
    if (read_only) co_return refuse();
    co_return counted(co_await inner_->mknod(c, p, n, m, r, u));
  }
  Task<Result<Entry>> mkdir(const RequestContext& c, InodeId p, std::string_view n, uint32_t m,
                            uint32_t u) override {
    if (read_only) co_return refuse();
    co_return counted(co_await inner_->mkdir(c, p, n, m, u));
  }
  Task<Result<Entry>> symlink(const RequestContext& c, InodeId p, std::string_view n,
                              std::string_view t) override {
    if (read_only) co_return refuse();
    co_return counted(co_await inner_->symlink(c, p, n, t));
  }
  Task<Result<Entry>> link(const RequestContext& c, InodeId i, InodeId p,
                           std::string_view n) override {
    if (read_only) co_return refuse();
    co_return counted(co_await inner_->link(c, i, p, n));
  }
  Task<Status> unlink(const RequestContext& c, InodeId p, std::string_view n) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->unlink(c, p, n);
  }
  Task<Status> rmdir(const RequestContext& c, InodeId p, std::string_view n) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->rmdir(c, p, n);
  }
  Task<Status> rename(const RequestContext& c, InodeId p, std::string_view n, InodeId np,
                      std::string_view nn, uint32_t f) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->rename(c, p, n, np, nn, f);
  }
  Task<Result<OpenReply>> open(const RequestContext& c, InodeId i, uint32_t f, bool k) override {
    if (read_only && ((f & O_ACCMODE) != O_RDONLY || (f & O_TRUNC) != 0)) co_return refuse();
    co_return co_await inner_->open(c, i, f, k);
  }
  Task<Result<CreateReply>> create(const RequestContext& c, InodeId p, std::string_view n,
                                   uint32_t m, uint32_t f, uint32_t u, bool k) override {
    if (read_only) co_return refuse();
    if (yield) co_await pause();
    Result<CreateReply> r = co_await inner_->create(c, p, n, m, f, u, k);
    if (r) note(r->entry.ino);
    co_return r;
  }
  Task<Result<size_t>> read(const RequestContext& c, InodeId i, HandleId fh, uint64_t o, uint32_t s,
                            const IoVecs& d) override {
    ++reads;
    if (yield) co_await pause();
    co_return co_await inner_->read(c, i, fh, o, s, d);
  }
  Task<Result<size_t>> write(const RequestContext& c, InodeId i, HandleId fh, uint64_t o,
                             const IoVecs& s, bool k) override {
    if (read_only) co_return refuse();
    ++writes;
    co_return co_await inner_->write(c, i, fh, o, s, k);
  }
  Task<Status> flush(const RequestContext& c, InodeId i, HandleId fh, uint64_t l) override {
    co_return co_await inner_->flush(c, i, fh, l);
  }
  Task<Status> release(const RequestContext& c, InodeId i, HandleId fh, uint32_t f) override {
    co_return co_await inner_->release(c, i, fh, f);
  }
  Task<Status> fsync(const RequestContext& c, InodeId i, HandleId fh, bool d) override {
    co_return co_await inner_->fsync(c, i, fh, d);
  }
  Task<Result<OpenReply>> opendir(const RequestContext& c, InodeId i, uint32_t f) override {
    co_return co_await inner_->opendir(c, i, f);
  }
  Task<Status> readdir(const RequestContext& c, InodeId i, HandleId fh, uint64_t o,
                       DirSink& s) override {
    co_return co_await inner_->readdir(c, i, fh, o, s);
  }
  Task<Status> readdirplus(const RequestContext& c, InodeId i, HandleId fh, uint64_t o,
                           DirPlusSink& s) override {
    co_return co_await inner_->readdirplus(c, i, fh, o, s);
  }
  Task<Status> releasedir(const RequestContext& c, InodeId i, HandleId fh) override {
    co_return co_await inner_->releasedir(c, i, fh);
  }
  Task<Status> fsyncdir(const RequestContext& c, InodeId i, HandleId fh, bool d) override {
    co_return co_await inner_->fsyncdir(c, i, fh, d);
  }
  Task<Result<StatFs>> statfs(const RequestContext& c, InodeId i) override {
    co_return co_await inner_->statfs(c, i);
  }
  Task<Status> setxattr(const RequestContext& c, InodeId i, std::string_view n,
                        std::span<const char> v, uint32_t f) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->setxattr(c, i, n, v, f);
  }
  Task<Result<XattrReply>> getxattr(const RequestContext& c, InodeId i, std::string_view n,
                                    uint32_t s) override {
    co_return co_await inner_->getxattr(c, i, n, s);
  }
  Task<Result<XattrReply>> listxattr(const RequestContext& c, InodeId i, uint32_t s) override {
    co_return co_await inner_->listxattr(c, i, s);
  }
  Task<Status> removexattr(const RequestContext& c, InodeId i, std::string_view n) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->removexattr(c, i, n);
  }
  Task<Status> access(const RequestContext& c, InodeId i, uint32_t m) override {
    if (read_only && (m & W_OK) != 0) co_return Errno{EROFS};
    co_return co_await inner_->access(c, i, m);
  }
  Task<Status> fallocate(const RequestContext& c, InodeId i, HandleId fh, uint64_t o, uint64_t l,
                         uint32_t m) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->fallocate(c, i, fh, o, l, m);
  }
  Task<Result<uint64_t>> lseek(const RequestContext& c, InodeId i, HandleId fh, uint64_t o,
                               uint32_t w) override {
    ++lseeks;
    co_return co_await inner_->lseek(c, i, fh, o, w);
  }
  Task<Result<size_t>> copy_file_range(const RequestContext& c, InodeId a, HandleId fa, uint64_t oa,
                                       InodeId b, HandleId fb, uint64_t ob, uint64_t len,
                                       uint64_t f) override {
    if (read_only) co_return refuse();
    co_return co_await inner_->copy_file_range(c, a, fa, oa, b, fb, ob, len, f);
  }
  int host_fd(InodeId i, HandleId fh) const override { return inner_->host_fd(i, fh); }
  Task<Result<size_t>> copy_from_host_fd(const RequestContext& c, int fd, uint64_t oi, InodeId o,
                                         HandleId fo, uint64_t oo, uint64_t len) override {
    if (read_only) co_return refuse();
    ++host_copies;
    if (on_host_copy) on_host_copy();
    if (refuse_host_copy != 0) co_return Errno{refuse_host_copy};
    co_return co_await inner_->copy_from_host_fd(c, fd, oi, o, fo, oo, len);
  }

 private:
  Errno refuse() {
    std::lock_guard lock(mu_);
    ++refused;
    return Errno{EROFS};
  }
  static Task<void> pause() {
    auto ex = co_await boost::asio::this_coro::executor;
    co_await boost::asio::post(ex, boost::asio::use_awaitable);
  }
  void note(InodeId ino) {
    std::lock_guard lock(mu_);
    ++refs_[ino];
  }
  Result<Entry> counted(Result<Entry> r) {
    if (r && r->ino != 0) note(r->ino);
    return r;
  }

  std::shared_ptr<Filesystem> inner_;
  mutable std::mutex mu_;
  std::map<InodeId, int64_t> refs_;
};

}  // namespace sandfs::dualfs::testing
