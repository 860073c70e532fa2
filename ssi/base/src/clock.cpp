#include "base/clock.hpp"

#include <time.h>

namespace ssi {

SteadyClock& SteadyClock::instance() {
  static SteadyClock clock;
  return clock;
}

std::int64_t realtime_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

}  // namespace ssi
