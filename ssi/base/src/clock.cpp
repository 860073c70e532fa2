#include "base/clock.hpp"

namespace ssi {

SteadyClock& SteadyClock::instance() {
  static SteadyClock clock;
  return clock;
}

}  // namespace ssi
