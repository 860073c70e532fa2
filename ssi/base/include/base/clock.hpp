// Injectable clock: production code asks a Clock, tests use FakeClock
// (testing/base/fake_clock.hpp) to make timing deterministic.
#pragma once

#include <chrono>
#include <cstdint>

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

// CLOCK_REALTIME in ns: wall time, comparable between hosts as far as their
// clocks agree (the machine-wide guest TSC epoch).
std::int64_t realtime_ns();

}  // namespace ssi
