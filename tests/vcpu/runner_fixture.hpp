// Shared pieces for run-loop tests: a device handler, a local IPI router
// and a fixture with one FakeVcpu + LAPIC + runner.
#pragma once

#include <future>
#include <thread>

#include "lapic_fixture.hpp"
#include "vcpu/fake_vcpu.hpp"
#include "vcpu/runner.hpp"

namespace ssi::vcpu::testing {

namespace r = apic_reg;
using namespace std::chrono_literals;

constexpr std::uint16_t kExitPort = 0x501;  // like the machine's debug-exit port

class TestIo final : public IoHandler {
 public:
  explicit TestIo(ExitRequest& exit) : exit_(exit) {}
  Result<void> pio(VcpuId, std::uint16_t port, bool is_write,
                   std::span<std::uint8_t> data) override {
    std::lock_guard lock(mu);
    pio_log.push_back({port, is_write, std::vector<std::uint8_t>(data.begin(), data.end())});
    if (port == kExitPort && is_write) exit_.request(data[0]);
    if (port == 0x60 && !is_write) data[0] = 0x5A;
    if (port == 0xBAD) return make_error(Errc::kProtocol, "device 0xBAD refused");
    return ok();
  }
  Result<void> mmio(VcpuId, Gpa gpa, bool is_write, std::span<std::uint8_t> data) override {
    std::lock_guard lock(mu);
    mmio_log.push_back({gpa.value(), is_write, std::vector<std::uint8_t>(data.begin(), data.end())});
    if (!is_write) std::fill(data.begin(), data.end(), 0x77);
    return ok();
  }
  struct Access {
    std::uint64_t addr;
    bool write;
    std::vector<std::uint8_t> data;
  };
  std::mutex mu;
  std::vector<Access> pio_log, mmio_log;

 private:
  ExitRequest& exit_;
};

// Routes IPIs between the LAPICs of one test "machine".
class LocalRouter final : public IpiSink {
 public:
  void send_ipi(const Ipi& ipi) override {
    for (Lapic* l : lapics)
      if (l->targeted_by(ipi)) l->deliver(ipi);
  }
  std::vector<Lapic*> lapics;
};

struct RunnerTest : ::testing::Test {
  RunnerTest() { router.lapics = {&lapic}; }

  // Runs the loop on its own thread; bounded: a hang fails the test.
  void start() {
    done = std::async(std::launch::async, [this] { return runner.run(); });
  }
  Result<void> finish(std::chrono::milliseconds timeout = 5s) {
    if (done.wait_for(timeout) != std::future_status::ready) {
      ADD_FAILURE() << "run loop did not finish within " << timeout.count() << " ms";
      runner.stop();
      exit_request.request(99);
    }
    return done.get();
  }
  void enable_apic() { mmio_write32(lapic, r::kSvr, 0x1FF); }

  ssi::testing::FakeClock clock;
  FakeVcpu vcpu{VcpuId{0}};
  LocalRouter router;
  LapicConfig cfg = [] {
    LapicConfig c;
    c.bsp = true;
    return c;
  }();
  Lapic lapic{cfg, clock, router, nullptr};
  ExitRequest exit_request;
  TestIo io{exit_request};
  VcpuRunner runner{vcpu, lapic, io, exit_request, clock};
  std::future<Result<void>> done;
};

}  // namespace ssi::vcpu::testing
