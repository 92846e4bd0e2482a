// PageMap on its own: chunk boundaries, and a randomized comparison with a dense model.
#include <random>
#include <set>

#include "backends/memfs/pages.hpp"
#include "memfs_fixture.hpp"

namespace sandfs::memfs::testing {
namespace {

constexpr uint64_t page = page_size;
constexpr uint64_t chunk = 64 * page;  // pages per chunk in PageMap

void put(PageMap& m, uint64_t offset, const std::string& data) {
  m.allocate(offset, data.size(), true);
  std::string copy = data;
  iovec iov{copy.data(), copy.size()};
  IoVecs v{std::span<const iovec>(&iov, 1), copy.size()};
  IoVecCursor cur(v);
  m.write(offset, data.size(), cur);
}

std::string get(const PageMap& m, uint64_t offset, size_t len) {
  std::string out(len, '\xAA');
  iovec iov{out.data(), out.size()};
  IoVecs v{std::span<const iovec>(&iov, 1), out.size()};
  IoVecCursor cur(v);
  m.read(offset, len, cur);
  return out;
}

TEST_CASE("pagemap: writes and reads across chunk boundaries", "[memfs][pages]") {
  PageMap m;
  const std::string data(3 * page, 'x');
  put(m, chunk - page - 7, data);  // straddles chunks 0 and 1
  CHECK(m.count() == 4);
  CHECK(get(m, chunk - page - 7, data.size()) == data);
  CHECK(m.missing(0, 2 * chunk) == 128 - 4);
  CHECK(get(m, chunk - page - 17, 10) == std::string(10, '\0'));
  CHECK(*m.next_data(0) == chunk - 2 * page);
  CHECK(m.next_hole(chunk - 2 * page) == chunk + 2 * page);
}

TEST_CASE("pagemap: holes and data far apart", "[memfs][pages]") {
  PageMap m;
  put(m, 200 * page + 5, "a");
  put(m, 1000 * chunk, "b");
  CHECK(m.count() == 2);
  CHECK(*m.next_data(0) == 200 * page);
  CHECK(*m.next_data(201 * page) == 1000 * chunk);
  CHECK_FALSE(m.next_data(1000 * chunk + page).has_value());
  CHECK(m.next_hole(200 * page) == 201 * page);
  CHECK(get(m, 200 * page, 10) == std::string("\0\0\0\0\0a\0\0\0\0", 10));
  // A read spanning absent chunks between the two pages.
  std::string span = get(m, 200 * page, 3 * chunk);
  CHECK(span[5] == 'a');
  CHECK(std::count(span.begin(), span.end(), '\0') == static_cast<long>(3 * chunk - 1));
}

TEST_CASE("pagemap: a full chunk followed by another continues the data run", "[memfs][pages]") {
  PageMap m;
  m.allocate(0, 2 * chunk + 3 * page, false);
  CHECK(m.count() == 131);
  CHECK(m.next_hole(0) == 2 * chunk + 3 * page);
  CHECK(m.next_hole(chunk + 5) == 2 * chunk + 3 * page);
  CHECK(m.punch(chunk, chunk) == 64);  // empties chunk 1 entirely
  CHECK(m.count() == 67);
  CHECK(m.next_hole(0) == chunk);
  CHECK(*m.next_data(chunk) == 2 * chunk);
  CHECK(m.truncate(chunk / 2 + 5) == 67 - 33);
  CHECK(m.count() == 33);
  CHECK(m.clear() == 33);
  CHECK(m.count() == 0);
  CHECK_FALSE(m.next_data(0).has_value());
}

TEST_CASE("pagemap: fit finds the prefix that needs at most n new pages", "[memfs][pages]") {
  PageMap m;
  m.allocate(0, page, false);             // page 0
  m.allocate(chunk + page, page, false);  // page 65
  CHECK(m.fit(10, 3 * page, 0) == page - 10);
  CHECK(m.fit(10, 3 * page, 1) == 2 * page - 10);
  CHECK(m.fit(10, 3 * page, 5) == 3 * page);
  CHECK(m.fit(page, 10, 0) == 0);
  CHECK(m.fit(page + 5, 10, 1) == 10);
  // Across a chunk boundary with an allocated page inside the range.
  CHECK(m.fit(chunk - page, 4 * page, 1) == page);
  CHECK(m.fit(chunk - page, 4 * page, 2) == 3 * page);  // pages 63, 64 new; 65 present; 66 not
  CHECK(m.fit(chunk - page, 4 * page, 3) == 4 * page);
  CHECK(m.fit(0, page, 0) == page);
  CHECK(m.fit(0, 0, 0) == 0);
}

// A dense model of the same file: bytes plus the set of allocated pages.
struct Model {
  std::string bytes;
  std::set<uint64_t> pages;

  void ensure(uint64_t end) {
    if (bytes.size() < end) bytes.resize(end, '\0');
  }
};

TEST_CASE("pagemap: randomized operations match a dense model", "[memfs][pages]") {
  constexpr uint64_t span = 3 * chunk + 17 * page;  // a few chunks
  for (unsigned seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    PageMap m;
    Model model;
    model.ensure(span + 2 * page);
    auto pick = [&](uint64_t limit) { return rng() % limit; };
    for (int step = 0; step < 300; ++step) {
      const uint64_t off = pick(span);
      const uint64_t len = 1 + pick(std::min<uint64_t>(span - off, 5 * page));
      const unsigned op = static_cast<unsigned>(pick(5));
      if (op == 0) {
        std::string data(len, static_cast<char>('a' + pick(26)));
        put(m, off, data);
        model.bytes.replace(off, len, data);
        for (uint64_t p = off / page; p <= (off + len - 1) / page; ++p)
          model.pages.insert(p);
      } else if (op == 1) {
        m.punch(off, len);
        std::fill_n(model.bytes.begin() + off, len, '\0');
        for (uint64_t p = (off + page - 1) / page; (p + 1) * page <= off + len; ++p) {
          model.pages.erase(p);
        }
      } else if (op == 2) {
        m.zero(off, len);
        std::fill_n(model.bytes.begin() + off, len, '\0');
      } else if (op == 3) {
        m.truncate(off);
        std::fill(model.bytes.begin() + off, model.bytes.end(), '\0');
        model.pages.erase(model.pages.lower_bound((off + page - 1) / page), model.pages.end());
      } else {
        const uint64_t out = pick(span - len + 1);
        std::set<uint64_t> add;
        for (uint64_t d = out / page; d <= (out + len - 1) / page; ++d) {
          const uint64_t from = std::max(out, d * page);
          const uint64_t to = std::min(out + len, (d + 1) * page);
          const uint64_t s_from = off + (from - out);
          const uint64_t s_to = off + (to - out);
          auto it = model.pages.lower_bound(s_from / page);
          if (it != model.pages.end() && *it <= (s_to - 1) / page) add.insert(d);
        }
        const uint64_t expected_new = [&] {
          uint64_t n = 0;
          for (uint64_t d : add)
            n += model.pages.contains(d) ? 0 : 1;
          return n;
        }();
        CHECK(PageMap::copy_missing(m, off, m, out, len) == expected_new);
        CHECK(PageMap::copy_allocate(m, off, m, out, len) == expected_new);
        PageMap::copy(m, off, m, out, len);
        model.bytes.replace(out, len, model.bytes.substr(off, len));
        model.pages.insert(add.begin(), add.end());
      }
      REQUIRE(m.count() == model.pages.size());
    }
    CHECK(get(m, 0, model.bytes.size()) == model.bytes);
    CHECK(m.missing(0, span) == span / page - model.pages.size());
    for (uint64_t probe = 0; probe < span; probe += 997) {
      auto it = model.pages.lower_bound(probe / page);
      std::optional<uint64_t> want;
      if (it != model.pages.end()) want = std::max(probe, *it * page);
      CHECK(m.next_data(probe) == want);
      uint64_t hole = probe / page;
      while (model.pages.contains(hole))
        ++hole;
      CHECK(m.next_hole(probe) == std::max(probe, hole * page));
    }
  }
}

}  // namespace
}  // namespace sandfs::memfs::testing
