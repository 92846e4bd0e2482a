#include "backends/dualfs/child_listing.hpp"

namespace sandfs::dualfs {

namespace {

// Takes a bounded round of entries so a huge directory is read in several calls.
class RoundSink final : public DirSink {
 public:
  explicit RoundSink(std::vector<ChildDirEntry>& out) : out_(out) {}
  bool add(std::string_view name, InodeId ino, uint32_t dtype, uint64_t next_offset) override {
    if (taken_ >= round_size) return false;
    ++taken_;
    last_offset = next_offset;
    if (name != "." && name != "..") out_.push_back({std::string(name), ino, dtype});
    return true;
  }
  static constexpr size_t round_size = 1024;
  size_t taken_ = 0;
  uint64_t last_offset = 0;

 private:
  std::vector<ChildDirEntry>& out_;
};

}  // namespace

Task<Result<std::vector<ChildDirEntry>>> list_child_dir(Filesystem& fs, const RequestContext& ctx,
                                                        InodeId dir) {
  Result<OpenReply> opened = co_await fs.opendir(ctx, dir, 0);
  if (!opened) co_return Errno{opened.error()};
  const HandleId fh = opened->fh;
  std::vector<ChildDirEntry> out;
  uint64_t offset = 0;
  Status status;
  for (;;) {
    RoundSink sink(out);
    status = co_await fs.readdir(ctx, dir, fh, offset, sink);
    if (!status || sink.taken_ == 0) break;
    offset = sink.last_offset;
  }
  Status released = co_await fs.releasedir(ctx, dir, fh);
  (void)released;
  if (!status) co_return Errno{status.error()};
  co_return out;
}

}  // namespace sandfs::dualfs
