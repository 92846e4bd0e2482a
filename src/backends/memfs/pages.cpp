#include "backends/memfs/pages.hpp"

#include <algorithm>
#include <cstring>

namespace sandfs::memfs {

namespace {

uint64_t first_page(uint64_t offset) {
  return offset >> page_shift;
}
uint64_t last_page(uint64_t offset, uint64_t len) {
  return (offset + len - 1) >> page_shift;
}
uint64_t page_start(uint64_t index) {
  return index << page_shift;
}
uint64_t in_page(uint64_t offset) {
  return offset & (page_size - 1);
}

}  // namespace

uint64_t PageMap::missing(uint64_t offset, uint64_t len) const {
  if (len == 0) return 0;
  const uint64_t first = first_page(offset);
  const uint64_t last = last_page(offset, len);
  uint64_t present = 0;
  for (auto it = pages_.lower_bound(first); it != pages_.end() && it->first <= last; ++it) {
    ++present;
  }
  return (last - first + 1) - present;
}

uint64_t PageMap::allocate(uint64_t offset, uint64_t len, bool overwrite) {
  if (len == 0) return 0;
  const uint64_t first = first_page(offset);
  const uint64_t last = last_page(offset, len);
  const uint64_t end = offset + len;
  // New pages are built aside and merged in at the end: if an allocation throws, the file has not
  // changed. merge() moves nodes and cannot throw.
  std::map<uint64_t, Page> fresh;
  auto it = pages_.lower_bound(first);
  for (uint64_t i = first; i <= last; ++i) {
    if (it != pages_.end() && it->first == i) {
      ++it;
      continue;
    }
    const bool whole = page_start(i) >= offset && page_start(i) + page_size <= end;
    Page p = overwrite && whole ? std::make_unique_for_overwrite<std::byte[]>(page_size)
                                : std::make_unique<std::byte[]>(page_size);
    fresh.emplace_hint(fresh.end(), i, std::move(p));
  }
  const uint64_t added = fresh.size();
  pages_.merge(fresh);
  return added;
}

uint64_t PageMap::punch(uint64_t offset, uint64_t len) {
  if (len == 0) return 0;
  const uint64_t end = offset + len;
  uint64_t freed = 0;
  auto it = pages_.lower_bound(first_page(offset));
  const uint64_t last = last_page(offset, len);
  while (it != pages_.end() && it->first <= last) {
    const uint64_t start = page_start(it->first);
    const uint64_t from = std::max(offset, start);
    const uint64_t to = std::min(end, start + page_size);
    if (from == start && to == start + page_size) {
      it = pages_.erase(it);
      ++freed;
      continue;
    }
    std::memset(it->second.get() + (from - start), 0, to - from);
    ++it;
  }
  return freed;
}

void PageMap::zero(uint64_t offset, uint64_t len) {
  if (len == 0) return;
  const uint64_t end = offset + len;
  const uint64_t last = last_page(offset, len);
  for (auto it = pages_.lower_bound(first_page(offset)); it != pages_.end() && it->first <= last;
       ++it) {
    const uint64_t start = page_start(it->first);
    const uint64_t from = std::max(offset, start);
    const uint64_t to = std::min(end, start + page_size);
    std::memset(it->second.get() + (from - start), 0, to - from);
  }
}

uint64_t PageMap::truncate(uint64_t size) {
  const uint64_t keep = (size + page_size - 1) >> page_shift;  // pages [0, keep) survive
  uint64_t freed = 0;
  for (auto it = pages_.lower_bound(keep); it != pages_.end();) {
    it = pages_.erase(it);
    ++freed;
  }
  if (in_page(size) != 0) {
    if (auto it = pages_.find(first_page(size)); it != pages_.end()) {
      std::memset(it->second.get() + in_page(size), 0, page_size - in_page(size));
    }
  }
  return freed;
}

uint64_t PageMap::clear() {
  const uint64_t freed = pages_.size();
  pages_.clear();
  return freed;
}

void PageMap::write(uint64_t offset, size_t len, IoVecCursor& src) {
  if (len == 0) return;
  auto it = pages_.find(first_page(offset));
  while (len > 0) {
    const size_t at = in_page(offset);
    const size_t n = std::min<size_t>(len, page_size - at);
    // allocate() ran first, so consecutive pages follow each other in the map.
    src.copy_out(it->second.get() + at, n);
    offset += n;
    len -= n;
    ++it;
  }
}

void PageMap::read(uint64_t offset, size_t len, IoVecCursor& dst) const {
  auto it = pages_.lower_bound(first_page(offset));
  while (len > 0) {
    const uint64_t index = first_page(offset);
    const size_t at = in_page(offset);
    const size_t n = std::min<size_t>(len, page_size - at);
    if (it != pages_.end() && it->first == index) {
      dst.copy_in(it->second.get() + at, n);
      ++it;
    } else {
      dst.fill_zero(n);
    }
    offset += n;
    len -= n;
  }
}

std::optional<uint64_t> PageMap::next_data(uint64_t offset) const {
  auto it = pages_.lower_bound(first_page(offset));
  if (it == pages_.end()) return std::nullopt;
  return std::max(offset, page_start(it->first));
}

uint64_t PageMap::next_hole(uint64_t offset) const {
  uint64_t index = first_page(offset);
  for (auto it = pages_.lower_bound(index); it != pages_.end() && it->first == index; ++it) {
    ++index;
  }
  return std::max(offset, page_start(index));
}

bool PageMap::has_data(uint64_t offset, uint64_t len) const {
  if (len == 0) return false;
  auto it = pages_.lower_bound(first_page(offset));
  return it != pages_.end() && it->first <= last_page(offset, len);
}

std::byte* PageMap::page(uint64_t index) {
  auto it = pages_.find(index);
  return it == pages_.end() ? nullptr : it->second.get();
}

namespace {

// Calls f(dst_page_index, src_offset, src_len) for every destination page the copy touches, with
// the part of the source that lands in it.
template <class F>
void for_each_dst_page(uint64_t off_in, uint64_t off_out, uint64_t len, F&& f) {
  if (len == 0) return;
  const uint64_t last = last_page(off_out, len);
  for (uint64_t d = first_page(off_out); d <= last; ++d) {
    const uint64_t from = std::max(off_out, page_start(d));
    const uint64_t to = std::min(off_out + len, page_start(d) + page_size);
    f(d, off_in + (from - off_out), to - from);
  }
}

}  // namespace

uint64_t PageMap::copy_missing(const PageMap& src, uint64_t off_in, const PageMap& dst,
                               uint64_t off_out, uint64_t len) {
  uint64_t n = 0;
  for_each_dst_page(off_in, off_out, len, [&](uint64_t d, uint64_t s_off, uint64_t s_len) {
    if (!dst.pages_.contains(d) && src.has_data(s_off, s_len)) ++n;
  });
  return n;
}

uint64_t PageMap::copy_allocate(const PageMap& src, uint64_t off_in, PageMap& dst, uint64_t off_out,
                                uint64_t len) {
  // Decide from the source as it is now, before any destination page exists: with src == dst a
  // freshly allocated page is all zeros, exactly what the hole it replaces read as.
  std::map<uint64_t, Page> fresh;
  for_each_dst_page(off_in, off_out, len, [&](uint64_t d, uint64_t s_off, uint64_t s_len) {
    if (!dst.pages_.contains(d) && src.has_data(s_off, s_len)) {
      fresh.emplace_hint(fresh.end(), d, std::make_unique<std::byte[]>(page_size));
    }
  });
  const uint64_t added = fresh.size();
  dst.pages_.merge(fresh);
  return added;
}

void PageMap::copy(PageMap& src, uint64_t off_in, PageMap& dst, uint64_t off_out, uint64_t len) {
  // Each chunk lies within one source page and one destination page. A destination page that is
  // still a hole had an all-hole source (see copy_allocate) and stays a hole.
  auto chunk = [&](uint64_t s, uint64_t d, uint64_t n) {
    std::byte* dp = dst.page(first_page(d));
    if (dp == nullptr) return;
    const std::byte* sp = src.page(first_page(s));
    if (sp != nullptr) {
      std::memmove(dp + in_page(d), sp + in_page(s), n);
    } else {
      std::memset(dp + in_page(d), 0, n);
    }
  };
  const bool backward = &src == &dst && off_out > off_in;
  if (!backward) {
    for (uint64_t pos = 0; pos < len;) {
      const uint64_t s = off_in + pos;
      const uint64_t d = off_out + pos;
      const uint64_t n = std::min({len - pos, page_size - in_page(s), page_size - in_page(d)});
      chunk(s, d, n);
      pos += n;
    }
  } else {
    // Overlapping with the destination above the source: copy from the end, like memmove.
    for (uint64_t pos = len; pos > 0;) {
      const uint64_t s_end = off_in + pos;
      const uint64_t d_end = off_out + pos;
      const uint64_t n = std::min({pos, in_page(s_end - 1) + 1, in_page(d_end - 1) + 1});
      chunk(s_end - n, d_end - n, n);
      pos -= n;
    }
  }
}

}  // namespace sandfs::memfs
