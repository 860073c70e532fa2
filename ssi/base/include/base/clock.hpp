// Injectable clock: production code asks a Clock, tests use FakeClock
// (testing/base/fake_clock.hpp) to make timing deterministic.
#pragma once

#include <chrono>

namespace ssi {

class Clock {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;
  virtual ~Clock() = default;
  virtual time_point now() const = 0;
};

class SteadyClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  static SteadyClock& instance();
};

}  // namespace ssi
