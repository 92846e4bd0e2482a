#include "core/units.hpp"

#include <catch2/catch.hpp>

using sandfs::format_size;
using sandfs::parse_count;
using sandfs::parse_size;

namespace {
uint64_t size_of(const char* text) {
  uint64_t v = 12345;
  auto err = parse_size(text, v);
  INFO(text << ": " << err.message);
  REQUIRE_FALSE(err);
  return v;
}

std::string size_error(const char* text) {
  uint64_t v = 12345;
  auto err = parse_size(text, v);
  CHECK(v == 12345);  // untouched on failure
  return err.message;
}
}  // namespace

TEST_CASE("parse_size accepts plain bytes", "[units]") {
  CHECK(size_of("0") == 0);
  CHECK(size_of("1") == 1);
  CHECK(size_of("4096") == 4096);
  CHECK(size_of("4096B") == 4096);
  CHECK(size_of("4096b") == 4096);
  CHECK(size_of("18446744073709551615") == UINT64_MAX);
}

TEST_CASE("parse_size accepts binary units in every spelling", "[units]") {
  CHECK(size_of("512k") == 512 * 1024);
  CHECK(size_of("512K") == 512 * 1024);
  CHECK(size_of("512KB") == 512 * 1024);
  CHECK(size_of("512KiB") == 512 * 1024);
  CHECK(size_of("512kib") == 512 * 1024);
  CHECK(size_of("64M") == 64ull << 20);
  CHECK(size_of("64MiB") == 64ull << 20);
  CHECK(size_of("64mb") == 64ull << 20);
  CHECK(size_of("1G") == 1ull << 30);
  CHECK(size_of("1GiB") == 1ull << 30);
  CHECK(size_of("2T") == 2ull << 40);
  CHECK(size_of("2TiB") == 2ull << 40);
  CHECK(size_of("16777215T") == 16777215ull << 40);
}

TEST_CASE("parse_size rejects garbage with a message", "[units]") {
  for (const char* bad : {"", "abc", "K", "-1", "+1", " 1", "1 ", "1.5G", "1e3", "12X", "1KK",
                          "1iB", "1Ki", "0x10", "64 MiB"}) {
    INFO("input '" << bad << "'");
    CHECK_FALSE(size_error(bad).empty());
  }
  CHECK_THAT(size_error("1.5G"), Catch::Contains("not a size"));
  CHECK_THAT(size_error("abc"), Catch::Contains("not a number"));
}

TEST_CASE("parse_size rejects overflow", "[units]") {
  CHECK_THAT(size_error("18446744073709551616"), Catch::Contains("too large"));
  CHECK_THAT(size_error("99999999999999999999999"), Catch::Contains("too large"));
  CHECK_THAT(size_error("16777216T"), Catch::Contains("too large"));
  CHECK_THAT(size_error("17179869184G"), Catch::Contains("too large"));
}

TEST_CASE("parse_count takes whole numbers only", "[units]") {
  uint64_t v = 0;
  CHECK_FALSE(parse_count("10000", v));
  CHECK(v == 10000);
  CHECK(parse_count("10k", v));
  CHECK(parse_count("", v));
  CHECK(parse_count("-3", v));
  CHECK(parse_count("99999999999999999999", v));
  CHECK(v == 10000);
}

TEST_CASE("format_size picks the largest unit", "[units]") {
  CHECK(format_size(0) == "0 B");
  CHECK(format_size(1023) == "1023 B");
  CHECK(format_size(1024) == "1 KiB");
  CHECK(format_size(1536) == "1.5 KiB");
  CHECK(format_size(64ull << 20) == "64 MiB");
  CHECK(format_size((3ull << 30) / 2) == "1.5 GiB");
  CHECK(format_size(5ull << 40) == "5 TiB");
  CHECK(format_size(UINT64_MAX) == "16777215.9 TiB");
}
