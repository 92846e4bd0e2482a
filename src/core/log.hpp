// A small leveled logger: one line per call, written atomically to stderr.
//
//   SANDFS_LOG(info) << "mounted " << path;
//
// The stream expression is not evaluated when the level is disabled.
#pragma once

#include <sstream>
#include <string_view>

namespace sandfs::log {

enum class Level { trace = 0, debug, info, warn, error, off };

void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level& out);
inline bool enabled(Level l) {
  return l >= level() && l != Level::off;
}

class Line {
 public:
  explicit Line(Level level) : level_(level) {}
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;
  ~Line();
  template <class T>
  Line& operator<<(const T& value) {
    out_ << value;
    return *this;
  }

 private:
  Level level_;
  std::ostringstream out_;
};

}  // namespace sandfs::log

#define SANDFS_LOG(lvl)                                     \
  if (!::sandfs::log::enabled(::sandfs::log::Level::lvl)) { \
  } else                                                    \
    ::sandfs::log::Line(::sandfs::log::Level::lvl)
