// Run loop against scripted exits on the test thread.
#include <cstring>
#include <optional>

#include "runner_fixture.hpp"
#include "vcpu/timer.hpp"

namespace ssi::vcpu::testing {
namespace {

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

// The TSC-deadline timer turns a guest TSC value into host time with the
// vCPU's own TSC and rate, read from KVM when the vCPU starts and again at
// every deadline write (a restore or the guest may have moved the TSC).
// Without that model a Linux guest's ticks land seconds late or never.
TEST_F(RunnerTest, TscDeadlineUsesTheVcpusOwnTscAndRate) {
  using namespace std::chrono_literals;
  enable_apic();
  vcpu.tsc_khz = 2'000'000;  // 2 GHz
  vcpu.msrs[0x10] = 7'000'000'000;
  clock.advance(3s);
  std::optional<Clock::time_point> first, second;
  std::vector<std::uint8_t> tsc_mode(4);
  std::uint32_t lvt = (2u << 17) | 0xEC;  // TSC deadline, vector 0xEC
  std::memcpy(tsc_mode.data(), &lvt, 4);
  vcpu.push_mmio_write(0xFEE00000 + r::kLvtTimer, tsc_mode)
      .push_wrmsr(kMsrTscDeadline, 7'000'000'000 + 4'000'000, MsrExitReason::kFilter)  // +2 ms
      .push_io_out(0x3F8, {'a'})
      .then([&] {  // runs before this exit, after the write above
        first = lapic.timer_deadline();
        vcpu.msrs[0x10] = 100;  // KVM's TSC was set back (e.g. a restore)
      });
  vcpu.push_wrmsr(kMsrTscDeadline, 100 + 10'000'000, MsrExitReason::kFilter)  // +5 ms
      .push_io_out(0x3F8, {'b'})
      .then([&] { second = lapic.timer_deadline(); });
  vcpu.push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, clock.now() + 2ms);
  EXPECT_EQ(*second, clock.now() + 5ms);
}

TEST_F(RunnerTest, ApicBaseIsMirroredToKvmAtStartAndOnEveryWrite) {
  vcpu.push_io_out(0x3F8, {'a'}).then([this] {
    EXPECT_EQ(vcpu.msrs[kMsrApicBase], 0xFEE00900u) << "mirrored before the first entry";
  });
  vcpu.push_wrmsr(kMsrApicBase, 0xFEE00000, MsrExitReason::kFilter)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(vcpu.msrs[kMsrApicBase], 0xFEE00100u) << "KVM's copy (CPUID.1:EDX.APIC) follows EN";
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

TEST_F(RunnerTest, SelfIpiThroughIcrIsInjected) {
  enable_apic();
  vcpu.push_mmio_write(0xFEE00300, {0x33, 0x40, 0x04, 0x00}, true)  // fixed 0x33, self
      .push_io_out(0x3F8, {'z'}, true)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0x33});
}

TEST_F(RunnerTest, SaveStateNeedsAPausedVcpu) {
  auto r = runner.save_state();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("Paused"), std::string::npos) << r.error().message;
}

// End to end with host time: TimerThread + SteadyClock drive a periodic
// LAPIC timer into a vCPU that halts between ticks (the timer-tick kernel).
// Two vCPUs on two threads bounce an IPI: vCPU 0 sends 0x40 to vCPU 1 and
// halts; vCPU 1 wakes from HLT, takes it, answers with 0x41 and finishes;
// vCPU 0 wakes, takes 0x41 and ends the machine.
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

TEST(TscModelTest, EveryNodeStartsItsVcpusFromTheMachinesTscEpoch) {
  FakeVcpu v{VcpuId{3}};
  v.tsc_khz = 1'000'000;  // 1 GHz: one cycle per ns
  const std::int64_t now_ns = realtime_ns();
  ASSERT_TRUE(set_tsc_from_epoch(v, now_ns - 2'000'000'000).ok());
  EXPECT_GE(v.msrs[0x10], 2'000'000'000u);
  EXPECT_LT(v.msrs[0x10], 3'000'000'000u) << "2 s after the epoch (within a second)";
  ASSERT_TRUE(set_tsc_from_epoch(v, now_ns + 60'000'000'000).ok());
  EXPECT_EQ(v.msrs[0x10], 0u) << "a node whose clock is behind the epoch starts at 0";
}

TEST(TscModelTest, WithTheOffsetAttributeTheEpochMovesKvmsOffsetNotTheMsr) {
  FakeVcpu v{VcpuId{1}};
  v.tsc_khz = 1'000'000;
  v.tsc_offset = -5'000;
  v.msrs[0x10] = 123'456;  // what the vCPU reads now
  const std::int64_t now_ns = realtime_ns();
  ASSERT_TRUE(set_tsc_from_epoch(v, now_ns - 3'000'000'000).ok());
  EXPECT_GE(v.msrs[0x10], 3'000'000'000u);
  EXPECT_LT(v.msrs[0x10], 3'500'000'000u) << "3 s after the epoch";
  EXPECT_EQ(*v.tsc_offset, -5'000 + static_cast<std::int64_t>(v.msrs[0x10]) - 123'456)
      << "the offset moved by what the TSC lacked";
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
