// Warnings about things outsiders can trigger (refused connections, bad
// hellos) are logged once each, but at most kLinesPerSecond a second: a
// connect flood becomes one summary line a second, not a disk full of logs.
#pragma once

#include <chrono>
#include <string>

namespace ssi::log {

class RateLimitedLog {
 public:
  static constexpr int kLinesPerSecond = 5;
  explicit RateLimitedLog(std::string module) : module_(std::move(module)) {}
  void warn(const std::string& line);

 private:
  std::string module_;
  std::chrono::steady_clock::time_point window_{};
  int lines_ = 0;
  int suppressed_ = 0;
};

}  // namespace ssi::log
