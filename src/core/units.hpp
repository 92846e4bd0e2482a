// Parsing and printing of byte sizes and counts given on command lines and in config.
//
// Sizes are a decimal integer with an optional binary unit, case-insensitive:
//   "4096", "4096B", "512k", "512K", "512KB", "512KiB", "64M", "64MiB", "1G", "2TiB"
// Every unit is a power of 1024 ("1K" and "1KB" both mean 1024 bytes, as for tmpfs size=).
// Fractions ("1.5G"), signs, spaces, empty strings and values that do not fit in 64 bits are
// rejected with a message that says why.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sandfs {

struct ParseError {
  std::string message;  // empty when parsing succeeded
  explicit operator bool() const { return !message.empty(); }
};

// Parses a size (see above) into `out`. On failure leaves `out` untouched and returns the error.
ParseError parse_size(std::string_view text, uint64_t& out);

// Parses a plain unsigned decimal count ("10000"); no units, no sign.
ParseError parse_count(std::string_view text, uint64_t& out);

// "64 MiB", "1.5 GiB", "4096 B": the largest binary unit that keeps the value >= 1, with at most
// one decimal (truncated).
std::string format_size(uint64_t bytes);

}  // namespace sandfs
