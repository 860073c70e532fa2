// A Clock that moves only when the test says so.
#pragma once

#include <atomic>

#include "base/clock.hpp"

namespace ssi::testing {

class FakeClock final : public Clock {
 public:
  time_point now() const override { return time_point{duration{ns_.load()}}; }
  void advance(duration d) { ns_ += d.count(); }

 private:
  std::atomic<long long> ns_{0};
};

}  // namespace ssi::testing
