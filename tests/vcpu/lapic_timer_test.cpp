#include <thread>

#include "lapic_fixture.hpp"
#include "vcpu/timer.hpp"

namespace ssi::vcpu::testing {
namespace {

namespace r = apic_reg;
using namespace std::chrono_literals;
using LapicTimerTest = LapicFixture;

// bus_hz is 1 GHz: one count at divide 1 is 1 ns.
TEST_F(LapicTimerTest, OneShotFiresOnceAtTheDeadline) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, 0x1FF);
  mmio_write32(l, r::kTimerDivide, 0xB);  // divide by 1
  mmio_write32(l, r::kLvtTimer, 0x40);    // one-shot, vector 0x40
  mmio_write32(l, r::kTimerInitial, 1000);
  ASSERT_TRUE(timers.last);
  EXPECT_EQ(*timers.last, clock.now() + 1000ns) << "host timer armed for the deadline";
  clock.advance(400ns);
  EXPECT_EQ(mmio_read32(l, r::kTimerCurrent), 600u);
  l.update_timer(clock.now());
  EXPECT_FALSE(l.pending_vector()) << "not due yet";
  clock.advance(600ns);
  l.update_timer(clock.now());
  EXPECT_EQ(l.pending_vector(), 0x40);
  EXPECT_FALSE(timers.last) << "one-shot disarms";
  EXPECT_EQ(mmio_read32(l, r::kTimerCurrent), 0u);
}

TEST_F(LapicTimerTest, DivideConfigScalesThePeriod) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kTimerDivide, 0x3);  // divide by 16
  mmio_write32(l, r::kLvtTimer, 0x40);
  mmio_write32(l, r::kTimerInitial, 100);
  EXPECT_EQ(*l.timer_deadline(), clock.now() + 1600ns);
  mmio_write32(l, r::kTimerDivide, 0xA);  // divide by 128
  mmio_write32(l, r::kTimerInitial, 100);
  EXPECT_EQ(*l.timer_deadline(), clock.now() + 12800ns);
  mmio_write32(l, r::kTimerInitial, 0);  // 0 stops it
  EXPECT_FALSE(l.timer_deadline());
}

TEST_F(LapicTimerTest, PeriodicReloadsAndCountsTicksWithFakeTime) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, 0x1FF);
  mmio_write32(l, r::kTimerDivide, 0xB);
  mmio_write32(l, r::kLvtTimer, (1u << 17) | 0xEC);  // periodic, vector 0xEC
  mmio_write32(l, r::kTimerInitial, 1'000'000);       // 1 ms
  int ticks = 0;
  for (int i = 0; i < 50; ++i) {  // 50 ms of fake time in 250 us steps
    for (int j = 0; j < 4; ++j) {
      clock.advance(250us);
      l.update_timer(clock.now());
      if (auto v = l.pending_vector()) {
        EXPECT_EQ(*v, 0xEC);
        l.acknowledge(*v);
        mmio_write32(l, r::kEoi, 0);
        ++ticks;
      }
    }
  }
  EXPECT_EQ(ticks, 50);
  ASSERT_TRUE(l.timer_deadline()) << "periodic stays armed";
  EXPECT_EQ(*l.timer_deadline(), clock.now() + 1ms);
}

TEST_F(LapicTimerTest, PeriodicCoalescesMissedPeriods) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, 0x1FF);
  mmio_write32(l, r::kTimerDivide, 0xB);
  mmio_write32(l, r::kLvtTimer, (1u << 17) | 0x30);
  mmio_write32(l, r::kTimerInitial, 1000);
  clock.advance(3500ns);  // the vCPU was busy for 3.5 periods
  l.update_timer(clock.now());
  EXPECT_EQ(l.pending_vector(), 0x30);
  EXPECT_EQ(*l.timer_deadline(), clock.now() + 500ns) << "next edge stays on the grid";
}

TEST_F(LapicTimerTest, PeriodicCurrentCountReloadsBeforeTheTimerIsServiced) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kTimerDivide, 0xB);
  mmio_write32(l, r::kLvtTimer, (1u << 17) | 0x30);
  mmio_write32(l, r::kTimerInitial, 1000);
  clock.advance(2300ns);  // no update_timer() yet: the vCPU is busy
  EXPECT_EQ(mmio_read32(l, r::kTimerCurrent), 700u) << "0.3 periods into the third period";
  mmio_write32(l, r::kLvtTimer, 0x30);  // one-shot: no reload
  mmio_write32(l, r::kTimerInitial, 1000);
  clock.advance(2300ns);
  EXPECT_EQ(mmio_read32(l, r::kTimerCurrent), 0u);
}

TEST_F(LapicTimerTest, MaskedTimerKeepsTimeButRaisesNothing) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, 0x1FF);
  mmio_write32(l, r::kTimerDivide, 0xB);
  mmio_write32(l, r::kLvtTimer, (1u << 16) | 0x40);
  mmio_write32(l, r::kTimerInitial, 10);
  clock.advance(20ns);
  l.update_timer(clock.now());
  EXPECT_FALSE(l.pending_vector());
  EXPECT_FALSE(l.timer_deadline());
}

TEST_F(LapicTimerTest, TscDeadlineMode) {
  LapicConfig c = config();
  c.tsc.tsc_hz = 2'000'000'000;  // 2 GHz guest TSC
  c.tsc.epoch = clock.now();
  c.tsc.tsc_at_epoch = 1'000'000;
  Lapic l(c, clock, sink, &timers);
  mmio_write32(l, r::kSvr, 0x1FF);
  // Not in deadline mode: MSR writes are ignored and read 0.
  ASSERT_TRUE(l.msr_write(kMsrTscDeadline, 5'000'000).ok());
  EXPECT_EQ(l.msr_read(kMsrTscDeadline).value(), 0u);
  EXPECT_FALSE(l.timer_deadline());
  mmio_write32(l, r::kLvtTimer, (2u << 17) | 0x50);
  mmio_write32(l, r::kTimerInitial, 1234);  // ignored in deadline mode
  EXPECT_FALSE(l.timer_deadline());
  ASSERT_TRUE(l.msr_write(kMsrTscDeadline, 1'000'000 + 2'000'000).ok());  // +1 ms
  EXPECT_EQ(l.msr_read(kMsrTscDeadline).value(), 3'000'000u);
  EXPECT_EQ(*l.timer_deadline(), clock.now() + 1ms);
  clock.advance(999us);
  l.update_timer(clock.now());
  EXPECT_FALSE(l.pending_vector());
  clock.advance(1us);
  l.update_timer(clock.now());
  EXPECT_EQ(l.pending_vector(), 0x50);
  EXPECT_EQ(l.msr_read(kMsrTscDeadline).value(), 0u) << "reads 0 once fired";
  ASSERT_TRUE(l.msr_write(kMsrTscDeadline, 9'000'000).ok());
  ASSERT_TRUE(l.msr_write(kMsrTscDeadline, 0).ok());  // 0 disarms
  EXPECT_FALSE(l.timer_deadline());
}

TEST_F(LapicTimerTest, ModeSwitchDisarms) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kLvtTimer, 0x40);
  mmio_write32(l, r::kTimerInitial, 1000);
  ASSERT_TRUE(l.timer_deadline());
  mmio_write32(l, r::kLvtTimer, (2u << 17) | 0x40);
  EXPECT_FALSE(l.timer_deadline());
}

TEST(TimerThreadTest, CallsBackAtTheDeadlineAndHonoursCancel) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<VcpuId> due;
  TimerThread t([&](VcpuId id) {
    std::lock_guard lock(mu);
    due.push_back(id);
    cv.notify_all();
  });
  auto now = SteadyClock::instance().now();
  t.schedule(VcpuId{1}, now + 20ms);
  t.schedule(VcpuId{2}, now + 5ms);
  t.schedule(VcpuId{3}, now + 10ms);
  t.schedule(VcpuId{3}, std::nullopt);  // cancelled
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 2s, [&] { return due.size() >= 2; })) << "timers never fired";
  EXPECT_EQ(due[0], VcpuId{2});
  EXPECT_EQ(due[1], VcpuId{1});
  EXPECT_GE(SteadyClock::instance().now(), now + 20ms) << "fired early";
  lock.unlock();
  std::this_thread::sleep_for(20ms);
  lock.lock();
  EXPECT_EQ(due.size(), 2u) << "cancelled timer fired";
}

}  // namespace
}  // namespace ssi::vcpu::testing
