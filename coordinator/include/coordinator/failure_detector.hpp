// Adaptive failure detection for the heartbeats of the control plane.
//
// The deadline is derived from what was measured: mean + k * stddev of the
// last heartbeat inter-arrival times (as Cassandra/Akka's phi-accrual, in
// its normal-distribution form), never below `floor` and never above
// `ceiling`. A healthy host's pings arrive every 250 ms with little jitter,
// so the deadline is the floor; a host under QEMU/TCG or heavy load, whose
// pings arrive late and irregularly, earns a longer one, so it is not
// declared dead for being slow. A killed process is found at once anyway:
// its socket closes.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

namespace ssi::coord {

struct FailureDetectorOptions {
  // No heartbeat for this long = dead, however regular the history. Above
  // the longest pause a live process shows on a loaded host (3 s SIGSTOP in
  // tests/adversarial), below the 5 s a frozen peer may take to be found.
  std::chrono::milliseconds floor{4000};
  std::chrono::milliseconds ceiling{30000};
  double k = 8.0;          // stddevs above the mean inter-arrival time
  std::size_t window = 64; // inter-arrival samples kept
};

// `o` with the floor from SSI_FAILURE_TIMEOUT_MS (milliseconds, >= 500) if
// set: one variable configures the coordinator and every node it forks.
FailureDetectorOptions detector_options(std::chrono::milliseconds floor);

class FailureDetector {
 public:
  using Clock = std::chrono::steady_clock;

  explicit FailureDetector(FailureDetectorOptions o = {}, Clock::time_point start = Clock::now())
      : o_(o), last_(start) {}

  // A heartbeat (or any message proving the peer alive) arrived at `t`.
  void heard(Clock::time_point t);
  // The current deadline: clamp(mean + k * stddev, floor, ceiling).
  std::chrono::milliseconds deadline() const;
  // Silent for longer than the deadline at `t`.
  bool suspect(Clock::time_point t) const { return t - last_ > deadline(); }
  std::chrono::milliseconds silent_for(Clock::time_point t) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - last_);
  }

 private:
  FailureDetectorOptions o_;
  Clock::time_point last_;
  std::deque<double> intervals_ms_;
};

}  // namespace ssi::coord
