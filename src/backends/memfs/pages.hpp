// PageMap: the sparse, paged contents of one regular file.
//
// Data lives in 4 KiB pages; a missing page is a hole and reads as zeros. Pages are grouped in
// chunks of 64 (256 KiB of file) held in an ordered map by chunk index, each chunk an array of
// page pointers: a 1 MiB request touches four map nodes and then walks arrays, and a sparse file
// pays for the chunks it uses, not for its size. So a 1-byte write at 1 GiB costs one page,
// SEEK_DATA/SEEK_HOLE follow the map, and punching a hole gives the pages back. Capacity is charged
// per allocated page by the caller (MemFs), which asks missing() first, reserves, and only then
// allocates.
//
// Each page is its own heap allocation, so punching or truncating gives back exactly the memory
// the capacity accounting releases: capacity is what keeps a guest from using the host's memory,
// and a slab shared by several pages would keep freed capacity resident. The price: glibc grows a
// thread's arena with one mprotect per new 4 KiB page (~20% of a fresh in-process write); a page
// pool that returns freed pages with MADV_DONTNEED would avoid it if that ever matters.
//
// Invariant kept by the callers: every byte of an allocated page that lies at or beyond the file
// size is zero, so growing the size (truncate up, fallocate) never exposes old data.
//
// Not thread-safe: the owning Node's lock guards it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "backends/memfs/iovec_cursor.hpp"

namespace sandfs::memfs {

inline constexpr uint64_t page_size = 4096;
inline constexpr unsigned page_shift = 12;

class PageMap {
 public:
  uint64_t count() const { return count_; }

  // Number of pages of the byte range [offset, offset + len) that are not allocated.
  uint64_t missing(uint64_t offset, uint64_t len) const;

  // The longest prefix of [offset, offset + len) in which at most `pages` pages are missing.
  uint64_t fit(uint64_t offset, uint64_t len, uint64_t pages) const;

  // Allocates the missing pages of [offset, offset + len). With `overwrite`, pages lying wholly
  // inside the range are left uninitialised because the caller writes all of them next; every
  // other new page is zero-filled. Strong guarantee: on bad_alloc nothing was added.
  // Returns the number of pages added.
  uint64_t allocate(uint64_t offset, uint64_t len, bool overwrite);

  // Zeroes [offset, offset + len) and frees the pages it covers completely. Returns pages freed.
  uint64_t punch(uint64_t offset, uint64_t len);

  // Zeroes [offset, offset + len) within allocated pages (holes already read as zeros).
  void zero(uint64_t offset, uint64_t len);

  // Drops everything from byte `size` on: frees whole pages, zeroes the tail of the last one.
  // Returns pages freed.
  uint64_t truncate(uint64_t size);

  // Frees every page. Returns pages freed.
  uint64_t clear();

  // Copies len bytes from src into [offset, offset + len); the pages must be allocated.
  void write(uint64_t offset, size_t len, IoVecCursor& src);
  // Copies [offset, offset + len) into dst, zeros for holes.
  void read(uint64_t offset, size_t len, IoVecCursor& dst) const;

  // The first byte at or after `offset` that lies in an allocated page.
  std::optional<uint64_t> next_data(uint64_t offset) const;
  // The first byte at or after `offset` that lies in a hole (may be beyond the file size).
  uint64_t next_hole(uint64_t offset) const;
  // Whether any byte of [offset, offset + len) lies in an allocated page.
  bool has_data(uint64_t offset, uint64_t len) const;

  std::byte* page(uint64_t index);
  const std::byte* page(uint64_t index) const;

  // copy_file_range support. The destination pages that must be allocated so that the copy of
  // [off_in, off_in + len) of `src` to off_out lands somewhere: those not yet allocated whose
  // source span holds data (a destination page whose source is all hole can stay a hole).
  static uint64_t copy_missing(const PageMap& src, uint64_t off_in, const PageMap& dst,
                               uint64_t off_out, uint64_t len);
  // Allocates (zero-filled) the pages copy_missing() counted. Strong guarantee. Returns the count.
  static uint64_t copy_allocate(const PageMap& src, uint64_t off_in, PageMap& dst, uint64_t off_out,
                                uint64_t len);
  // Copies like memmove: src and dst may be the same map with overlapping ranges.
  static void copy(PageMap& src, uint64_t off_in, PageMap& dst, uint64_t off_out, uint64_t len);

 private:
  static constexpr unsigned chunk_shift = 6;
  static constexpr uint64_t chunk_pages = uint64_t{1} << chunk_shift;

  using Page = std::unique_ptr<std::byte[]>;
  struct Chunk {
    std::array<Page, chunk_pages> slots;
    uint32_t used = 0;  // non-null slots; a chunk with none is erased
  };
  using ChunkMap = std::map<uint64_t, Chunk>;

  // Visits page indexes [first, last] in order: present(index, chunk) for each page whose chunk
  // exists (the slot may still be empty), absent(from, to) for each run of pages without a chunk.
  template <class Map, class Present, class Absent>
  static void visit(Map& chunks, uint64_t first, uint64_t last, Present&& present, Absent&& absent);

  // Allocates the given (ascending, currently missing) pages; a page wholly inside the byte range
  // [raw_begin, raw_end) is left uninitialised, the rest zero-filled. Strong guarantee.
  uint64_t install(const std::vector<uint64_t>& indices, uint64_t raw_begin, uint64_t raw_end);

  ChunkMap chunks_;
  uint64_t count_ = 0;
};

}  // namespace sandfs::memfs
