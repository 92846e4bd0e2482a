#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace sandfs::log {

namespace {
std::atomic<Level> current_level{Level::info};

const char* level_name(Level l) {
  switch (l) {
    case Level::trace:
      return "TRACE";
    case Level::debug:
      return "DEBUG";
    case Level::info:
      return "INFO ";
    case Level::warn:
      return "WARN ";
    case Level::error:
      return "ERROR";
    case Level::off:
      break;
  }
  return "";
}
}  // namespace

void set_level(Level l) {
  current_level.store(l, std::memory_order_relaxed);
}
Level level() {
  return current_level.load(std::memory_order_relaxed);
}

bool parse_level(std::string_view text, Level& out) {
  static constexpr std::pair<std::string_view, Level> names[] = {
      {"trace", Level::trace}, {"debug", Level::debug}, {"info", Level::info},
      {"warn", Level::warn},   {"error", Level::error}, {"off", Level::off}};
  for (const auto& [name, value] : names) {
    if (text == name) {
      out = value;
      return true;
    }
  }
  return false;
}

Line::~Line() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm parts{};
  gmtime_r(&now.tv_sec, &parts);
  char stamp[40];
  const size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &parts);
  snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", now.tv_nsec / 1000000);
  std::ostringstream line;
  line << stamp << ' ' << level_name(level_) << " sandfs: " << out_.str() << '\n';
  const std::string text = line.str();
  // One write(2) keeps lines from different threads whole.
  [[maybe_unused]] auto written = ::write(STDERR_FILENO, text.data(), text.size());
}

}  // namespace sandfs::log
