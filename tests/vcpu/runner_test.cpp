#include <future>
#include <thread>

#include "lapic_fixture.hpp"
#include "vcpu/fake_vcpu.hpp"
#include "vcpu/runner.hpp"
#include "vcpu/timer.hpp"

namespace ssi::vcpu::testing {
namespace {

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
      if (ipi_targets(ipi, l->apic_id(), l->ldr(), l->x2apic_mode())) l->deliver(ipi);
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

TEST_F(RunnerTest, PortIoGoesToTheHandlerAndReadsReachTheGuest) {
  vcpu.push_io_out(0x3F8, {'A'}).push_io_in(0x60, 1).push_io_out(kExitPort, {7});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(exit_request.exit_code(), 7);
  ASSERT_EQ(io.pio_log.size(), 3u);
  EXPECT_EQ(io.pio_log[0].addr, 0x3F8u);
  EXPECT_EQ(io.pio_log[0].data, std::vector<std::uint8_t>{'A'});
  auto reads = vcpu.completed_reads();
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_EQ(reads[0].data, std::vector<std::uint8_t>{0x5A});
  EXPECT_EQ(runner.state(), VcpuState::kStopped);
}

TEST_F(RunnerTest, RepOutsIsSplitIntoElements) {
  ScriptedExit e;
  e.exit.kind = ExitKind::kIo;
  e.exit.io.port = 0x3F8;
  e.exit.io.is_write = true;
  e.exit.io.size = 1;
  e.exit.io.count = 3;
  e.data = {'a', 'b', 'c'};
  vcpu.push(e).push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  ASSERT_EQ(io.pio_log.size(), 4u);
  EXPECT_EQ(io.pio_log[2].data, std::vector<std::uint8_t>{'c'});
}

TEST_F(RunnerTest, DeviceErrorStopsTheVcpuWithThatError) {
  vcpu.push_io_out(0xBAD, {1});
  auto res = runner.run();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("0xBAD"), std::string::npos) << res.error().message;
}

TEST_F(RunnerTest, LapicMmioIsHandledInsideAndOtherMmioGoesToDevices) {
  vcpu.push_mmio_read(0xFEE00030, 4)
      .push_mmio_write(0xFEE00080, {0x20, 0, 0, 0})
      .push_mmio_read(0xD0000000, 2)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  auto reads = vcpu.completed_reads();
  ASSERT_EQ(reads.size(), 2u);
  EXPECT_EQ(reads[0].data, (std::vector<std::uint8_t>{0x14, 0, 5, 0}));
  EXPECT_EQ(reads[1].data, (std::vector<std::uint8_t>{0x77, 0x77}));
  EXPECT_EQ(mmio_read32(lapic, r::kTpr), 0x20u);
  ASSERT_EQ(io.mmio_log.size(), 1u);
  EXPECT_EQ(io.mmio_log[0].addr, 0xD0000000u);
}

TEST_F(RunnerTest, InternalErrorReportsTheInstructionBytes) {
  ScriptedExit e;
  e.exit.kind = ExitKind::kInternalError;
  e.exit.internal.suberror = 1;
  e.exit.internal.insn_bytes = {0xf3, 0x0f, 0xb8, 0xc0};  // popcnt
  vcpu.push(e);
  auto res = runner.run();
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.error().code, Errc::kUnsupported);
  EXPECT_NE(res.error().message.find("f3 0f b8 c0"), std::string::npos) << res.error().message;
}

TEST_F(RunnerTest, ShutdownAndFailEntryAreErrors) {
  vcpu.push_simple(ExitKind::kShutdown);
  auto res = runner.run();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("triple fault"), std::string::npos);

  FakeVcpu v2{VcpuId{1}};
  ScriptedExit e;
  e.exit.kind = ExitKind::kFailEntry;
  e.exit.fail_entry.hardware_entry_failure_reason = 0x80000021;
  v2.push(e);
  VcpuRunner r2(v2, lapic, io, exit_request, clock);
  res = r2.run();
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.error().message.find("0x80000021"), std::string::npos) << res.error().message;
}

TEST_F(RunnerTest, MsrExitsReachTheLapicAndUnknownMsrsGetGp) {
  vcpu.push_rdmsr(kMsrApicBase, MsrExitReason::kFilter)
      .push_wrmsr(0x830, 0x40FD, MsrExitReason::kInval)   // x2APIC MSR in xAPIC mode: #GP
      .push_rdmsr(0x123, MsrExitReason::kUnknown)          // nobody knows it: #GP
      .push_wrmsr(kMsrApicBase, 0xFEE00000 | (3u << 10), MsrExitReason::kFilter)
      .push_rdmsr(0x802, MsrExitReason::kInval)            // now x2APIC: id 0
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  auto reads = vcpu.completed_reads();
  ASSERT_EQ(reads.size(), 5u);
  EXPECT_EQ(reads[0].msr_data, 0xFEE00000u | (1u << 11) | (1u << 8));
  EXPECT_EQ(reads[0].msr_error, 0);
  EXPECT_EQ(reads[1].msr_error, 1);
  EXPECT_EQ(reads[2].msr_error, 1);
  EXPECT_EQ(reads[3].msr_error, 0);
  EXPECT_TRUE(lapic.x2apic_mode());
  EXPECT_EQ(reads[4].msr_error, 0);
}

TEST_F(RunnerTest, InjectsAtTheFirstExitThatIsReady) {
  enable_apic();
  lapic.raise(0x40);
  // The loop starts not knowing readiness: it asks for a window first.
  vcpu.push_io_out(0x3F8, {'x'}, /*ready=*/false)
      .push_io_out(0x3F8, {'y'}, /*ready=*/true)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0x40});
  EXPECT_EQ(vcpu.bad_injections(), 0);
  auto windows = vcpu.window_requests();
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_TRUE(windows[0]);
  EXPECT_TRUE(windows[1]) << "still not ready at the first exit";
  EXPECT_FALSE(windows[2]) << "injected: window no longer needed";
  auto isr = mmio_read32(lapic, r::kIsr + 0x20);
  EXPECT_EQ(isr, 1u) << "vector 0x40 in service";
}

TEST_F(RunnerTest, WindowOpenExitLeadsToInjection) {
  enable_apic();
  vcpu.push_io_out(0x3F8, {'x'}, false).then([&] { lapic.raise(0x50); })
      .push_simple(ExitKind::kIrqWindowOpen, true)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0x50});
  EXPECT_EQ(vcpu.bad_injections(), 0);
  EXPECT_GE(runner.stats().windows_requested, 1u);
}

TEST_F(RunnerTest, HltParksUntilAnotherThreadSendsAnIpi) {
  enable_apic();
  vcpu.push_simple(ExitKind::kHlt, true).push_io_out(kExitPort, {0});
  start();
  // Wait (bounded) until the runner is parked in Halted.
  for (int i = 0; i < 500 && runner.state() != VcpuState::kHalted; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(runner.state(), VcpuState::kHalted);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(runner.state(), VcpuState::kHalted) << "woke up without an interrupt";
  Ipi ipi;
  ipi.vector = 0x60;
  ipi.destination = 0;
  router.send_ipi(ipi);  // as another vCPU's ICR write would
  ASSERT_TRUE(finish().ok());
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0x60});
  EXPECT_EQ(runner.stats().halts, 1u);
}

TEST_F(RunnerTest, CliHltIgnoresInterruptsButWakesOnNmi) {
  enable_apic();
  vcpu.push_simple(ExitKind::kHlt, /*ready (and IF)=*/false).push_io_out(kExitPort, {0});
  start();
  for (int i = 0; i < 500 && runner.state() != VcpuState::kHalted; ++i)
    std::this_thread::sleep_for(1ms);
  lapic.raise(0x40);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(runner.state(), VcpuState::kHalted) << "IF=0: a maskable interrupt must not wake";
  Ipi nmi;
  nmi.mode = DeliveryMode::kNmi;
  lapic.deliver(nmi);
  ASSERT_TRUE(finish().ok());
  EXPECT_EQ(vcpu.nmis(), 1);
}

TEST_F(RunnerTest, TimerWakesAHaltedVcpuWithFakeTime) {
  enable_apic();
  mmio_write32(lapic, r::kTimerDivide, 0xB);
  mmio_write32(lapic, r::kLvtTimer, (1u << 17) | 0xEC);  // periodic 1 ms
  mmio_write32(lapic, r::kTimerInitial, 1'000'000);
  vcpu.push_simple(ExitKind::kHlt, true).push_io_out(kExitPort, {0});
  start();
  for (int i = 0; i < 500 && runner.state() != VcpuState::kHalted; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(runner.state(), VcpuState::kHalted);
  clock.advance(1ms);
  runner.notify();  // what the TimerThread does at the deadline
  ASSERT_TRUE(finish().ok());
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0xEC});
}

TEST_F(RunnerTest, SelfIpiThroughIcrIsInjected) {
  enable_apic();
  vcpu.push_mmio_write(0xFEE00300, {0x33, 0x40, 0x04, 0x00}, true)  // fixed 0x33, self
      .push_io_out(0x3F8, {'z'}, true)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0x33});
}

TEST_F(RunnerTest, ApWaitsForSipiThenStartsInRealModeAtVectorTimes4K) {
  FakeVcpu ap{VcpuId{1}};
  LapicConfig c;
  c.vcpu = VcpuId{1};
  c.apic_id = 1;
  Lapic ap_lapic(c, clock, router, nullptr);
  router.lapics.push_back(&ap_lapic);
  VcpuRunner ap_runner(ap, ap_lapic, io, exit_request, clock);
  ap.sregs.cr0 = 0x80000011;  // whatever it had: SIPI must replace it
  ap.push_io_out(kExitPort, {0});
  auto ap_done = std::async(std::launch::async, [&] { return ap_runner.run(); });
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ap_runner.state(), VcpuState::kCreated);
  EXPECT_EQ(ap.runs(), 0) << "AP entered the guest before SIPI";
  // The BSP sends INIT then SIPI(0x09) to all-but-self.
  mmio_write32(lapic, r::kIcrLow, 0x000C4500);
  mmio_write32(lapic, r::kIcrLow, 0x000C4609);
  ASSERT_EQ(ap_done.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(ap_done.get().ok());
  EXPECT_EQ(ap.sregs.cs.selector, 0x0900);
  EXPECT_EQ(ap.sregs.cs.base, 0x9000u);
  EXPECT_EQ(ap.sregs.cr0 & 1, 0u) << "real mode";
  EXPECT_EQ(ap.regs.rip, 0u);
  EXPECT_EQ(ap.regs.rflags, 2u);
}

TEST_F(RunnerTest, PauseParksOutsideTheGuestAndResumeContinues) {
  vcpu.push_io_out(0x3F8, {'a'}).then([&] { runner.pause(); })
      .push_io_out(kExitPort, {0});
  start();
  ASSERT_TRUE(runner.wait_paused(2s));
  EXPECT_EQ(runner.state(), VcpuState::kPaused);
  int runs = vcpu.runs();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(vcpu.runs(), runs) << "ran while paused";
  runner.resume();
  ASSERT_TRUE(finish().ok());
}

TEST_F(RunnerTest, ExitRequestStopsAHaltedVcpu) {
  vcpu.push_simple(ExitKind::kHlt, true);
  start();
  for (int i = 0; i < 500 && runner.state() != VcpuState::kHalted; ++i)
    std::this_thread::sleep_for(1ms);
  exit_request.request(3);
  ASSERT_TRUE(finish(1s).ok());
  EXPECT_EQ(runner.state(), VcpuState::kStopped);
}

TEST_F(RunnerTest, MigratesAHaltedVcpuThatWakesOnTheOtherSide) {
  enable_apic();
  vcpu.regs.rflags = 0x202;  // IF=1
  vcpu.regs.rbx = 0x1234;
  vcpu.push_simple(ExitKind::kHlt, true);
  start();
  for (int i = 0; i < 500 && runner.state() != VcpuState::kHalted; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(runner.state(), VcpuState::kHalted);
  runner.pause();
  ASSERT_TRUE(runner.wait_paused(2s));
  auto saved = runner.save_state();
  ASSERT_TRUE(saved.ok()) << saved.error().to_string();
  EXPECT_EQ(saved->mp_state.mp_state, static_cast<std::uint32_t>(KVM_MP_STATE_HALTED));
  auto wire = serialize(*saved);
  runner.stop();
  ASSERT_TRUE(finish().ok());

  // The other node: fresh vCPU, LAPIC and runner.
  FakeVcpu v2{VcpuId{0}};
  LocalRouter router2;
  Lapic l2(cfg, clock, router2, nullptr);
  router2.lapics = {&l2};
  ExitRequest exit2;
  TestIo io2{exit2};
  VcpuRunner r2(v2, l2, io2, exit2, clock);
  auto got = deserialize(wire);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(r2.restore_state(*got).ok());
  EXPECT_EQ(v2.regs.rbx, 0x1234u);
  EXPECT_EQ(v2.mp_state.mp_state, static_cast<std::uint32_t>(KVM_MP_STATE_RUNNABLE))
      << "KVM without in-kernel LAPIC only takes RUNNABLE";
  v2.push_io_out(kExitPort, {0});
  auto done2 = std::async(std::launch::async, [&] { return r2.run(); });
  for (int i = 0; i < 500 && r2.state() != VcpuState::kHalted; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(r2.state(), VcpuState::kHalted) << "restored vCPU must still be in its HLT";
  EXPECT_EQ(v2.runs(), 0);
  l2.raise(0x70);
  ASSERT_EQ(done2.wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(done2.get().ok());
  EXPECT_EQ(v2.injected(), std::vector<std::uint8_t>{0x70});
}

TEST_F(RunnerTest, SaveStateNeedsAPausedVcpu) {
  auto r = runner.save_state();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("Paused"), std::string::npos) << r.error().message;
}

// End to end with host time: TimerThread + SteadyClock drive a periodic
// LAPIC timer into a vCPU that halts between ticks (the timer-tick kernel).
TEST(RunnerTimerTest, PeriodicTimerTicksWakeAHaltingGuest) {
  const Clock& steady = SteadyClock::instance();
  std::atomic<VcpuRunner*> target{nullptr};
  TimerThread timers([&](VcpuId) {
    if (auto* r = target.load()) r->notify();
  });
  LocalRouter router;
  LapicConfig c;
  c.bsp = true;
  Lapic lapic(c, steady, router, &timers);
  router.lapics = {&lapic};
  ExitRequest exit;
  TestIo io{exit};
  FakeVcpu vcpu{VcpuId{0}};
  auto eoi = [&] { mmio_write32(lapic, apic_reg::kEoi, 0); };  // the guest's handler
  constexpr int kTicks = 5;
  vcpu.push_simple(ExitKind::kHlt, true);
  for (int i = 1; i < kTicks; ++i) vcpu.push_simple(ExitKind::kHlt, true).then(eoi);
  vcpu.push_io_out(kExitPort, {0}).then(eoi);
  VcpuRunner runner(vcpu, lapic, io, exit, steady);
  target = &runner;
  mmio_write32(lapic, apic_reg::kSvr, 0x1FF);
  mmio_write32(lapic, apic_reg::kTimerDivide, 0xB);
  mmio_write32(lapic, apic_reg::kLvtTimer, (1u << 17) | 0xEC);
  auto t0 = steady.now();
  mmio_write32(lapic, apic_reg::kTimerInitial, 2'000'000);  // 2 ms at 1 GHz
  auto done = std::async(std::launch::async, [&] { return runner.run(); });
  if (done.wait_for(5s) != std::future_status::ready) {
    exit.request(99);
    FAIL() << "timer ticks did not arrive within 5 s";
  }
  ASSERT_TRUE(done.get().ok());
  auto took = steady.now() - t0;
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>(kTicks, 0xEC));
  EXPECT_GE(took, 2ms * kTicks) << "ticks came faster than the period";
  target = nullptr;
}

// Two vCPUs on two threads bounce an IPI: vCPU 0 sends 0x40 to vCPU 1 and
// halts; vCPU 1 wakes from HLT, takes it, answers with 0x41 and finishes;
// vCPU 0 wakes, takes 0x41 and ends the machine.
TEST(RunnerPairTest, IpiPingPongAcrossThreads) {
  ssi::testing::FakeClock clock;
  LocalRouter router;
  LapicConfig c0, c1;
  c0.bsp = c1.bsp = true;  // both running from the start
  c1.vcpu = VcpuId{1};
  c1.apic_id = 1;
  Lapic l0(c0, clock, router, nullptr), l1(c1, clock, router, nullptr);
  router.lapics = {&l0, &l1};
  mmio_write32(l0, apic_reg::kSvr, 0x1FF);
  mmio_write32(l1, apic_reg::kSvr, 0x1FF);
  ExitRequest exit;
  TestIo io{exit};
  FakeVcpu v0{VcpuId{0}}, v1{VcpuId{1}};
  auto icr = [](std::uint8_t vector, std::uint8_t dest) {
    return std::pair{std::vector<std::uint8_t>{0, 0, 0, dest},
                     std::vector<std::uint8_t>{vector, 0x40, 0, 0}};
  };
  auto [hi1, lo1] = icr(0x40, 1);
  auto [hi0, lo0] = icr(0x41, 0);
  v0.push_mmio_write(0xFEE00310, hi1).push_mmio_write(0xFEE00300, lo1)
      .push_simple(ExitKind::kHlt, true)
      .push_io_out(0x3F8, {'0'}, true)   // the 0x41 handler runs at this entry
      .push_io_out(kExitPort, {0}, true);
  VcpuRunner r0(v0, l0, io, exit, clock), r1(v1, l1, io, exit, clock);
  // The answer must find vCPU 0 asleep (else it takes 0x41 before its HLT
  // and, like a guest without a wake-up flag, sleeps for good).
  auto wait_v0_halted = [&] {
    for (int i = 0; i < 2000 && r0.state() != VcpuState::kHalted; ++i)
      std::this_thread::sleep_for(1ms);
  };
  v1.push_simple(ExitKind::kHlt, true)
      .push_mmio_write(0xFEE00310, hi0).then(wait_v0_halted)
      .push_mmio_write(0xFEE00300, lo0)
      .push_simple(ExitKind::kHlt, true);  // then sleeps until the machine exits
  auto d1 = std::async(std::launch::async, [&] { return r1.run(); });
  auto d0 = std::async(std::launch::async, [&] { return r0.run(); });
  bool finished = d0.wait_for(5s) == std::future_status::ready &&
                  d1.wait_for(5s) == std::future_status::ready;
  if (!finished) exit.request(99);
  ASSERT_TRUE(finished) << "ping-pong hung: vCPU0 " << state_name(r0.state()) << " runs "
                        << v0.runs() << ", vCPU1 " << state_name(r1.state()) << " runs "
                        << v1.runs();
  ASSERT_TRUE(d0.get().ok());
  ASSERT_TRUE(d1.get().ok());
  EXPECT_EQ(exit.exit_code(), 0);
  EXPECT_EQ(v1.injected(), std::vector<std::uint8_t>{0x40});
  EXPECT_EQ(v0.injected(), std::vector<std::uint8_t>{0x41});
  EXPECT_EQ(v0.bad_injections() + v1.bad_injections(), 0);
}

TEST(TscModelTest, ReadFromTheVcpuDrivesTscDeadline) {
  ssi::testing::FakeClock clock;
  clock.advance(5s);
  FakeVcpu v{VcpuId{0}};
  v.tsc_khz = 3'000'000;  // 3 GHz
  v.msrs[0x10] = 77'000'000;
  auto m = read_tsc_model(v, clock);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->tsc_hz, 3'000'000'000u);
  EXPECT_EQ(m->tsc_at_epoch, 77'000'000u);
  EXPECT_EQ(m->epoch, clock.now());
  RecordingSink sink;
  LapicConfig c;
  c.bsp = true;
  Lapic l(c, clock, sink, nullptr);
  l.set_tsc_model(*m);
  mmio_write32(l, apic_reg::kLvtTimer, (2u << 17) | 0x40);
  ASSERT_TRUE(l.msr_write(kMsrTscDeadline, 77'000'000 + 3'000'000).ok());  // +1 ms of TSC
  EXPECT_EQ(*l.timer_deadline(), clock.now() + 1ms);
}

TEST(SipiTest, RealModeStateAtVector) {
  kvm_sregs base{};
  base.cr0 = 0x80050033;
  base.efer = 0xD01;
  auto s = sipi_sregs(base, 0x9F);
  EXPECT_EQ(s.cs.selector, 0x9F00);
  EXPECT_EQ(s.cs.base, 0x9F000u);
  EXPECT_EQ(s.cs.limit, 0xFFFFu);
  EXPECT_EQ(s.ds.base, 0u);
  EXPECT_EQ(s.cr0, 0x60000010u);
  EXPECT_EQ(s.efer, 0u);
  EXPECT_EQ(sipi_regs().rip, 0u);
}

}  // namespace
}  // namespace ssi::vcpu::testing
