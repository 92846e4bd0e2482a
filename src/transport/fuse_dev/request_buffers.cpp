#include "transport/fuse_dev/request_buffers.hpp"

#include <cstdlib>
#include <new>

namespace sandfs::fuse_dev {

RequestBuffers::RequestBuffers(size_t buffer_size, size_t max_free)
    : buffer_size_((buffer_size + alignment - 1) / alignment * alignment), max_free_(max_free) {
  if (buffer_size_ == 0) buffer_size_ = alignment;
}

RequestBuffers::~RequestBuffers() {
  while (free_ != nullptr) {
    FreeNode* next = free_->next;
    std::free(free_);
    free_ = next;
  }
}

std::byte* RequestBuffers::acquire() {
  ++in_use_;
  if (free_ != nullptr) {
    FreeNode* node = free_;
    free_ = node->next;
    --free_count_;
    return reinterpret_cast<std::byte*>(node);
  }
  void* memory = std::aligned_alloc(alignment, buffer_size_);
  if (memory == nullptr) {
    --in_use_;
    throw std::bad_alloc();
  }
  allocations_.add();
  return static_cast<std::byte*>(memory);
}

void RequestBuffers::release(std::byte* buffer) noexcept {
  if (buffer == nullptr) return;
  --in_use_;
  if (free_count_ >= max_free_) {
    std::free(buffer);
    return;
  }
  free_ = new (buffer) FreeNode{free_};
  ++free_count_;
}

}  // namespace sandfs::fuse_dev
