#include "core/units.hpp"

#include <array>
#include <cctype>
#include <cstdio>
#include <limits>

namespace sandfs {

namespace {

constexpr std::array<std::string_view, 5> unit_letters = {"", "K", "M", "G", "T"};

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Splits "123abc" into digits and suffix; fails when there are no leading digits.
ParseError parse_digits(std::string_view text, uint64_t& value, std::string_view& rest) {
  size_t i = 0;
  uint64_t v = 0;
  constexpr uint64_t max = std::numeric_limits<uint64_t>::max();
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (v > (max - digit) / 10) {
      return {"'" + std::string(text) + "' is too large"};
    }
    v = v * 10 + digit;
    ++i;
  }
  if (i == 0) {
    return {"'" + std::string(text) + "' is not a number"};
  }
  value = v;
  rest = text.substr(i);
  return {};
}

}  // namespace

ParseError parse_size(std::string_view text, uint64_t& out) {
  if (text.empty()) return {"empty size"};
  uint64_t value = 0;
  std::string_view suffix;
  if (auto err = parse_digits(text, value, suffix)) return err;

  // Accepted suffixes: "", "B", then for each unit letter X: "X", "XB", "XiB".
  int shift = -1;
  if (suffix.empty() || iequals(suffix, "B")) {
    shift = 0;
  } else {
    for (size_t u = 1; u < unit_letters.size() && shift < 0; ++u) {
      const std::string letter(unit_letters[u]);
      if (iequals(suffix, letter) || iequals(suffix, letter + "B") ||
          iequals(suffix, letter + "iB")) {
        shift = static_cast<int>(u) * 10;
      }
    }
  }
  if (shift < 0) {
    return {"'" + std::string(text) +
            "' is not a size (expected an integer with an optional unit: B, K, M, G, T, "
            "e.g. 4096, 512K, 64MiB, 1G)"};
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return {"'" + std::string(text) + "' is too large"};
  }
  out = value << shift;
  return {};
}

ParseError parse_count(std::string_view text, uint64_t& out) {
  if (text.empty()) return {"empty number"};
  uint64_t value = 0;
  std::string_view rest;
  if (auto err = parse_digits(text, value, rest)) return err;
  if (!rest.empty()) return {"'" + std::string(text) + "' is not a whole number"};
  out = value;
  return {};
}

std::string format_size(uint64_t bytes) {
  static constexpr std::array<const char*, 5> names = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (unit + 1 < names.size() && (bytes >> (10 * (unit + 1))) != 0)
    ++unit;
  const uint64_t whole = bytes >> (10 * unit);
  const uint64_t rem = unit == 0 ? 0 : bytes & ((uint64_t{1} << (10 * unit)) - 1);
  // One decimal, truncated; computed without overflow since rem < 2^40.
  const uint64_t tenth = unit == 0 ? 0 : (rem * 10) >> (10 * unit);
  char buf[48];
  if (tenth == 0) {
    std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(whole), names[unit]);
  } else {
    std::snprintf(buf, sizeof buf, "%llu.%llu %s", static_cast<unsigned long long>(whole),
                  static_cast<unsigned long long>(tenth), names[unit]);
  }
  return buf;
}

}  // namespace sandfs
