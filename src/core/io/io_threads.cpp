#include "core/io/io_threads.hpp"

#include <latch>
#include <stdexcept>

#include "core/log.hpp"

namespace sandfs::io {

IoThreads::IoThreads(unsigned count, Ring::Mode mode, unsigned ring_entries) {
  if (count == 0) throw std::invalid_argument("IoThreads: at least one thread");
  std::latch ready(count);
  for (unsigned i = 0; i < count; ++i) {
    auto t = std::make_unique<Thread>();
    t->work.emplace(t->ctx.get_executor());
    Thread* self = t.get();
    t->thread = std::thread([self, mode, ring_entries, &ready] {
      std::optional<Ring> ring;
      try {
        ring.emplace(self->ctx, ring_entries, mode);
        self->io_uring = ring->uses_io_uring();
      } catch (const std::exception& e) {
        SANDFS_LOG(error) << "io thread: no io ring: " << e.what();
        ready.count_down();
        return;
      }
      Ring::Scope scope(*ring);
      ready.count_down();
      for (;;) {
        try {
          self->ctx.run();
          break;
        } catch (const std::exception& e) {
          // A handler threw: log it and keep the thread serving the others.
          SANDFS_LOG(error) << "io thread: unhandled exception: " << e.what();
        }
      }
    });
    threads_.push_back(std::move(t));
  }
  ready.wait();
}

IoThreads::~IoThreads() {
  stop();
}

boost::asio::io_context& IoThreads::pick() {
  const unsigned i = next_.fetch_add(1, std::memory_order_relaxed) % size();
  return threads_[i]->ctx;
}

bool IoThreads::uses_io_uring() const {
  for (const auto& t : threads_) {
    if (!t->io_uring) return false;
  }
  return true;
}

void IoThreads::stop() {
  for (auto& t : threads_) {
    t->work.reset();
    t->ctx.stop();
  }
  for (auto& t : threads_) {
    if (t->thread.joinable()) t->thread.join();
  }
}

}  // namespace sandfs::io
