#include "coordinator/failure_detector.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace ssi::coord {

FailureDetectorOptions detector_options(std::chrono::milliseconds floor) {
  FailureDetectorOptions o;
  o.floor = floor;
  if (const char* env = std::getenv("SSI_FAILURE_TIMEOUT_MS")) {
    long ms = std::strtol(env, nullptr, 10);
    if (ms >= 500) o.floor = std::chrono::milliseconds(ms);
  }
  o.ceiling = std::max(o.ceiling, o.floor);
  return o;
}

void FailureDetector::heard(Clock::time_point t) {
  if (t <= last_) return;
  intervals_ms_.push_back(std::chrono::duration<double, std::milli>(t - last_).count());
  if (intervals_ms_.size() > o_.window) intervals_ms_.pop_front();
  last_ = t;
}

std::chrono::milliseconds FailureDetector::deadline() const {
  if (intervals_ms_.size() < 2) return o_.floor;
  double mean = 0;
  for (double x : intervals_ms_) mean += x;
  mean /= static_cast<double>(intervals_ms_.size());
  double var = 0;
  for (double x : intervals_ms_) var += (x - mean) * (x - mean);
  var /= static_cast<double>(intervals_ms_.size() - 1);
  auto ms = std::chrono::milliseconds(static_cast<long>(mean + o_.k * std::sqrt(var)));
  return std::clamp(ms, o_.floor, o_.ceiling);
}

}  // namespace ssi::coord
