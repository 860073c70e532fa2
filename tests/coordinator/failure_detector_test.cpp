// The adaptive heartbeat deadline (coordinator/failure_detector.hpp), on
// made-up arrival times: no clock, no processes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "coordinator/failure_detector.hpp"

namespace ssi::coord {
namespace {

using namespace std::chrono_literals;
using Clock = FailureDetector::Clock;

TEST(FailureDetector, RegularHeartbeatsGiveTheFloor) {
  Clock::time_point t{};
  FailureDetector d({}, t);
  for (int i = 0; i < 100; ++i) d.heard(t += 250ms);
  EXPECT_EQ(d.deadline(), 4000ms);
  EXPECT_FALSE(d.suspect(t + 3900ms));
  EXPECT_TRUE(d.suspect(t + 4100ms));
}

TEST(FailureDetector, IrregularHeartbeatsEarnALongerDeadline) {
  // A host under QEMU/TCG: pings mostly on time, every 8th one 1.5 s late.
  Clock::time_point t{};
  FailureDetector d({}, t);
  for (int i = 0; i < 64; ++i) d.heard(t += (i % 8 == 7 ? 1750ms : 250ms));
  EXPECT_GT(d.deadline(), 4000ms);
  EXPECT_FALSE(d.suspect(t + 4200ms)) << "deadline " << d.deadline().count() << " ms";
}

TEST(FailureDetector, DeadlineIsCappedByTheCeiling) {
  Clock::time_point t{};
  FailureDetectorOptions o;
  o.ceiling = 10s;
  FailureDetector d(o, t);
  std::mt19937 rng(1);
  for (int i = 0; i < 64; ++i) d.heard(t += std::chrono::milliseconds(rng() % 9000));
  EXPECT_EQ(d.deadline(), 10s);
  EXPECT_TRUE(d.suspect(t + 10100ms));
}

TEST(FailureDetector, OldIrregularityAgesOutOfTheWindow) {
  Clock::time_point t{};
  FailureDetector d({}, t);
  d.heard(t += 3500ms);  // one long pause
  for (int i = 0; i < 64; ++i) d.heard(t += 250ms);
  EXPECT_EQ(d.deadline(), 4000ms);
}

TEST(FailureDetector, FloorComesFromTheEnvironmentWhenSet) {
  unsetenv("SSI_FAILURE_TIMEOUT_MS");
  EXPECT_EQ(detector_options(4000ms).floor, 4000ms);
  setenv("SSI_FAILURE_TIMEOUT_MS", "12000", 1);
  EXPECT_EQ(detector_options(4000ms).floor, 12000ms);
  setenv("SSI_FAILURE_TIMEOUT_MS", "40000", 1);
  EXPECT_EQ(detector_options(4000ms).ceiling, 40000ms) << "the ceiling never sits below the floor";
  setenv("SSI_FAILURE_TIMEOUT_MS", "10", 1);  // nonsense: ignored
  EXPECT_EQ(detector_options(4000ms).floor, 4000ms);
  unsetenv("SSI_FAILURE_TIMEOUT_MS");
}

}  // namespace
}  // namespace ssi::coord
