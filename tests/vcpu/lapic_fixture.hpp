// Shared pieces for LAPIC tests: a sink that records IPIs, a scheduler that
// records timer arms, and little MMIO/MSR helpers.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "base/fake_clock.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu::testing {

class RecordingSink final : public IpiSink {
 public:
  void send_ipi(const Ipi& ipi) override {
    std::lock_guard lock(mu);
    ipis.push_back(ipi);
  }
  std::vector<Ipi> take() {
    std::lock_guard lock(mu);
    return std::exchange(ipis, {});
  }
  std::mutex mu;
  std::vector<Ipi> ipis;
};

class RecordingTimers final : public TimerScheduler {
 public:
  void schedule(VcpuId, std::optional<Clock::time_point> d) override { last = d; ++calls; }
  std::optional<Clock::time_point> last;
  int calls = 0;
};

inline std::uint32_t mmio_read32(Lapic& l, std::uint32_t off) {
  std::uint8_t b[4];
  l.mmio_read(kLapicDefaultBase + off, b);
  std::uint32_t v;
  std::memcpy(&v, b, 4);
  return v;
}

inline void mmio_write32(Lapic& l, std::uint32_t off, std::uint32_t v) {
  std::uint8_t b[4];
  std::memcpy(b, &v, 4);
  l.mmio_write(kLapicDefaultBase + off, b);
}

struct LapicFixture : ::testing::Test {
  LapicConfig config(std::uint32_t id = 0, bool bsp = true) {
    LapicConfig c;
    c.vcpu = VcpuId{id};
    c.apic_id = id;
    c.bsp = bsp;
    return c;
  }
  ssi::testing::FakeClock clock;
  RecordingSink sink;
  RecordingTimers timers;
};

}  // namespace ssi::vcpu::testing
