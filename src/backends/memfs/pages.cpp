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

template <class Map, class Present, class Absent>
void PageMap::visit(Map& chunks, uint64_t first, uint64_t last, Present&& present,
                    Absent&& absent) {
  auto it = chunks.lower_bound(first >> chunk_shift);
  uint64_t i = first;
  for (;;) {
    if (it == chunks.end() || (it->first << chunk_shift) > last) {
      absent(i, last);
      return;
    }
    const uint64_t chunk_first = it->first << chunk_shift;
    if (chunk_first > i) {
      absent(i, chunk_first - 1);
      i = chunk_first;
    }
    const uint64_t chunk_last = std::min(last, chunk_first + chunk_pages - 1);
    for (; i <= chunk_last; ++i)
      present(i, it->second);
    if (chunk_last == last) return;
    ++it;
  }
}

uint64_t PageMap::install(const std::vector<uint64_t>& indices, uint64_t raw_begin,
                          uint64_t raw_end) {
  // Everything that can throw happens before the map changes: the new pages, and the new chunks
  // built in a side map that merge() then splices in without allocating.
  std::vector<Page> fresh;
  fresh.reserve(indices.size());
  ChunkMap fresh_chunks;
  uint64_t checked = ~uint64_t{0};  // indices ascend: look each chunk up once
  for (uint64_t i : indices) {
    const bool raw = page_start(i) >= raw_begin && page_start(i) + page_size <= raw_end;
    fresh.push_back(raw ? std::make_unique_for_overwrite<std::byte[]>(page_size)
                        : std::make_unique<std::byte[]>(page_size));
    const uint64_t c = i >> chunk_shift;
    if (c != checked && !chunks_.contains(c)) fresh_chunks.try_emplace(fresh_chunks.end(), c);
    checked = c;
  }
  chunks_.merge(fresh_chunks);

  auto it = chunks_.end();
  for (size_t k = 0; k < indices.size(); ++k) {
    const uint64_t c = indices[k] >> chunk_shift;
    if (it == chunks_.end() || it->first != c) it = chunks_.find(c);
    it->second.slots[indices[k] & (chunk_pages - 1)] = std::move(fresh[k]);
    ++it->second.used;
  }
  count_ += indices.size();
  return indices.size();
}

uint64_t PageMap::missing(uint64_t offset, uint64_t len) const {
  if (len == 0) return 0;
  uint64_t n = 0;
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, const Chunk& c) {
        if (!c.slots[i & (chunk_pages - 1)]) ++n;
      },
      [&](uint64_t from, uint64_t to) { n += to - from + 1; });
  return n;
}

uint64_t PageMap::fit(uint64_t offset, uint64_t len, uint64_t pages) const {
  if (len == 0) return 0;
  uint64_t missing_seen = 0;
  uint64_t cut = len;  // bytes before the first page that does not fit
  bool done = false;
  auto take = [&](uint64_t from, uint64_t to) {  // a run of missing pages
    if (done) return;
    if (missing_seen + (to - from + 1) <= pages) {
      missing_seen += to - from + 1;
      return;
    }
    const uint64_t first_excess = from + (pages - missing_seen);
    cut = page_start(first_excess) > offset ? page_start(first_excess) - offset : 0;
    done = true;
  };
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, const Chunk& c) {
        if (!c.slots[i & (chunk_pages - 1)]) take(i, i);
      },
      take);
  return cut;
}

uint64_t PageMap::allocate(uint64_t offset, uint64_t len, bool overwrite) {
  if (len == 0) return 0;
  std::vector<uint64_t> indices;
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, const Chunk& c) {
        if (!c.slots[i & (chunk_pages - 1)]) indices.push_back(i);
      },
      [&](uint64_t from, uint64_t to) {
        for (uint64_t i = from; i <= to; ++i)
          indices.push_back(i);
      });
  return overwrite ? install(indices, offset, offset + len) : install(indices, 0, 0);
}

uint64_t PageMap::punch(uint64_t offset, uint64_t len) {
  if (len == 0) return 0;
  const uint64_t end = offset + len;
  const uint64_t first = first_page(offset);
  const uint64_t last = last_page(offset, len);
  uint64_t freed = 0;
  auto it = chunks_.lower_bound(first >> chunk_shift);
  while (it != chunks_.end() && (it->first << chunk_shift) <= last) {
    Chunk& c = it->second;
    const uint64_t chunk_first = it->first << chunk_shift;
    const uint64_t lo = std::max(first, chunk_first);
    const uint64_t hi = std::min(last, chunk_first + chunk_pages - 1);
    for (uint64_t i = lo; i <= hi; ++i) {
      Page& slot = c.slots[i & (chunk_pages - 1)];
      if (!slot) continue;
      const uint64_t from = std::max(offset, page_start(i));
      const uint64_t to = std::min(end, page_start(i) + page_size);
      if (to - from == page_size) {
        slot.reset();
        --c.used;
        ++freed;
      } else {
        std::memset(slot.get() + in_page(from), 0, to - from);
      }
    }
    it = c.used == 0 ? chunks_.erase(it) : std::next(it);
  }
  count_ -= freed;
  return freed;
}

void PageMap::zero(uint64_t offset, uint64_t len) {
  if (len == 0) return;
  const uint64_t end = offset + len;
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, Chunk& c) {
        Page& slot = c.slots[i & (chunk_pages - 1)];
        if (!slot) return;
        const uint64_t from = std::max(offset, page_start(i));
        const uint64_t to = std::min(end, page_start(i) + page_size);
        std::memset(slot.get() + in_page(from), 0, to - from);
      },
      [](uint64_t, uint64_t) {});
}

uint64_t PageMap::truncate(uint64_t size) {
  const uint64_t keep = (size + page_size - 1) >> page_shift;  // pages [0, keep) survive
  uint64_t freed = 0;
  for (auto it = chunks_.lower_bound(keep >> chunk_shift); it != chunks_.end();) {
    Chunk& c = it->second;
    const uint64_t chunk_first = it->first << chunk_shift;
    for (uint64_t j = 0; j < chunk_pages; ++j) {
      if (chunk_first + j >= keep && c.slots[j]) {
        c.slots[j].reset();
        --c.used;
        ++freed;
      }
    }
    it = c.used == 0 ? chunks_.erase(it) : std::next(it);
  }
  count_ -= freed;
  if (in_page(size) != 0) {
    if (std::byte* p = page(first_page(size))) {
      std::memset(p + in_page(size), 0, page_size - in_page(size));
    }
  }
  return freed;
}

uint64_t PageMap::clear() {
  const uint64_t freed = count_;
  chunks_.clear();
  count_ = 0;
  return freed;
}

void PageMap::write(uint64_t offset, size_t len, IoVecCursor& src) {
  if (len == 0) return;
  uint64_t pos = offset;
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, Chunk& c) {
        // allocate() ran first: every slot of the range holds a page.
        const size_t n = std::min<uint64_t>(offset + len, page_start(i) + page_size) - pos;
        src.copy_out(c.slots[i & (chunk_pages - 1)].get() + in_page(pos), n);
        pos += n;
      },
      [](uint64_t, uint64_t) {});
}

void PageMap::read(uint64_t offset, size_t len, IoVecCursor& dst) const {
  if (len == 0) return;
  const uint64_t end = offset + len;
  uint64_t pos = offset;
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, const Chunk& c) {
        const size_t n = std::min(end, page_start(i) + page_size) - pos;
        const Page& slot = c.slots[i & (chunk_pages - 1)];
        if (slot) {
          dst.copy_in(slot.get() + in_page(pos), n);
        } else {
          dst.fill_zero(n);
        }
        pos += n;
      },
      [&](uint64_t, uint64_t to) {
        const size_t n = std::min(end, page_start(to) + page_size) - pos;
        dst.fill_zero(n);
        pos += n;
      });
}

std::optional<uint64_t> PageMap::next_data(uint64_t offset) const {
  const uint64_t index = first_page(offset);
  for (auto it = chunks_.lower_bound(index >> chunk_shift); it != chunks_.end(); ++it) {
    const uint64_t chunk_first = it->first << chunk_shift;
    for (uint64_t j = chunk_first >= index ? 0 : index - chunk_first; j < chunk_pages; ++j) {
      if (it->second.slots[j]) return std::max(offset, page_start(chunk_first + j));
    }
  }
  return std::nullopt;
}

uint64_t PageMap::next_hole(uint64_t offset) const {
  uint64_t index = first_page(offset);
  for (auto it = chunks_.lower_bound(index >> chunk_shift);; ++it) {
    if (it == chunks_.end() || it->first != index >> chunk_shift) break;
    const uint64_t chunk_first = it->first << chunk_shift;
    for (uint64_t j = index - chunk_first; j < chunk_pages; ++j, ++index) {
      if (!it->second.slots[j]) return std::max(offset, page_start(index));
    }
  }
  return std::max(offset, page_start(index));
}

bool PageMap::has_data(uint64_t offset, uint64_t len) const {
  if (len == 0) return false;
  bool found = false;
  visit(
      chunks_, first_page(offset), last_page(offset, len),
      [&](uint64_t i, const Chunk& c) { found = found || c.slots[i & (chunk_pages - 1)]; },
      [](uint64_t, uint64_t) {});
  return found;
}

std::byte* PageMap::page(uint64_t index) {
  auto it = chunks_.find(index >> chunk_shift);
  return it == chunks_.end() ? nullptr : it->second.slots[index & (chunk_pages - 1)].get();
}

const std::byte* PageMap::page(uint64_t index) const {
  auto it = chunks_.find(index >> chunk_shift);
  return it == chunks_.end() ? nullptr : it->second.slots[index & (chunk_pages - 1)].get();
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
    if (dst.page(d) == nullptr && src.has_data(s_off, s_len)) ++n;
  });
  return n;
}

uint64_t PageMap::copy_allocate(const PageMap& src, uint64_t off_in, PageMap& dst, uint64_t off_out,
                                uint64_t len) {
  // Decided from the source as it is now, before any destination page exists: with src == dst a
  // freshly allocated page is all zeros, exactly what the hole it replaces read as.
  std::vector<uint64_t> indices;
  for_each_dst_page(off_in, off_out, len, [&](uint64_t d, uint64_t s_off, uint64_t s_len) {
    if (dst.page(d) == nullptr && src.has_data(s_off, s_len)) indices.push_back(d);
  });
  return dst.install(indices, 0, 0);
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
