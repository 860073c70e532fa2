#include "base/rate_limited_log.hpp"

#include "base/log.hpp"

namespace ssi::log {

void RateLimitedLog::warn(const std::string& line) {
  auto t = std::chrono::steady_clock::now();
  if (t - window_ >= std::chrono::seconds(1)) {
    if (suppressed_ > 0) get(module_)->warn("{} more like this in the last second (not shown)", suppressed_);
    window_ = t;
    lines_ = suppressed_ = 0;
  }
  if (lines_ < kLinesPerSecond) {
    ++lines_;
    get(module_)->warn("{}", line);
  } else {
    ++suppressed_;
  }
}

}  // namespace ssi::log
