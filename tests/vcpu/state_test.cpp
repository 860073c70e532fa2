#include <gtest/gtest.h>

#include "vcpu/exit.hpp"
#include "vcpu/io.hpp"
#include "vcpu/kvm.hpp"
#include "vcpu/state.hpp"

namespace ssi::vcpu {
namespace {

using S = VcpuState;
using E = VcpuEvent;

TEST(VcpuStateTest, LifecycleOfABootProcessor) {
  VcpuStateMachine m;
  EXPECT_EQ(m.state(), S::kCreated);
  for (auto [ev, want] : {std::pair{E::kStart, S::kRunnable}, {E::kEnterGuest, S::kRunning},
                          {E::kHalt, S::kHalted}, {E::kWake, S::kRunnable},
                          {E::kEnterGuest, S::kRunning}, {E::kExitGuest, S::kRunnable},
                          {E::kStop, S::kStopped}}) {
    ASSERT_TRUE(m.apply(ev).ok()) << event_name(ev);
    EXPECT_EQ(m.state(), want) << event_name(ev);
  }
}

TEST(VcpuStateTest, RunningCannotPauseOrHaltTwice) {
  EXPECT_FALSE(transition(S::kRunning, E::kPause).ok());
  EXPECT_FALSE(transition(S::kHalted, E::kHalt).ok());
  EXPECT_FALSE(transition(S::kCreated, E::kEnterGuest).ok());
  EXPECT_FALSE(transition(S::kRunnable, E::kBeginMigration).ok());
  auto err = transition(S::kRunning, E::kPause);
  EXPECT_NE(err.error().message.find("Running"), std::string::npos) << err.error().message;
}

TEST(VcpuStateTest, ResumeReturnsToThePausedFromState) {
  VcpuStateMachine m;
  ASSERT_TRUE(m.apply(E::kStart).ok());
  ASSERT_TRUE(m.apply(E::kEnterGuest).ok());
  ASSERT_TRUE(m.apply(E::kHalt).ok());
  ASSERT_TRUE(m.apply(E::kPause).ok());
  EXPECT_EQ(m.state(), S::kPaused);
  ASSERT_TRUE(m.apply(E::kResume).ok());
  EXPECT_EQ(m.state(), S::kHalted);  // a halted guest stays halted, it did not get an interrupt
}

TEST(VcpuStateTest, MigrationFromPausedOnly) {
  VcpuStateMachine m;
  ASSERT_TRUE(m.apply(E::kStart).ok());
  ASSERT_TRUE(m.apply(E::kPause).ok());
  ASSERT_TRUE(m.apply(E::kBeginMigration).ok());
  EXPECT_EQ(m.state(), S::kMigrating);
  EXPECT_FALSE(m.apply(E::kResume).ok());
  ASSERT_TRUE(m.apply(E::kMigrationFailed).ok());
  EXPECT_EQ(m.state(), S::kPaused);
  ASSERT_TRUE(m.apply(E::kBeginMigration).ok());
  ASSERT_TRUE(m.apply(E::kMigrationDone).ok());
  EXPECT_EQ(m.state(), S::kStopped);
}

TEST(VcpuStateTest, InitSendsALiveVcpuBackToWaitForSipi) {
  EXPECT_EQ(transition(S::kRunnable, E::kInit).value(), S::kCreated);
  EXPECT_EQ(transition(S::kHalted, E::kInit).value(), S::kCreated);
  EXPECT_FALSE(transition(S::kRunning, E::kInit).ok());
}

TEST(VcpuStateTest, StoppedIsTerminal) {
  for (auto ev : {E::kStart, E::kEnterGuest, E::kWake, E::kResume, E::kPause})
    EXPECT_FALSE(transition(S::kStopped, ev).ok()) << event_name(ev);
  EXPECT_TRUE(transition(S::kStopped, E::kStop).ok());
}

kvm_cpuid_entry2 leaf(std::uint32_t fn, std::uint32_t idx, std::uint32_t a, std::uint32_t b,
                      std::uint32_t c, std::uint32_t d) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.index = idx;
  e.eax = a;
  e.ebx = b;
  e.ecx = c;
  e.edx = d;
  return e;
}

TEST(CpuidTest, FilterMasksWhatTheEmulatorCannotRun) {
  CpuidEntries in = {leaf(1, 0, 0, 0x00010800, 0xFFFFFFFF, 0xFFFFFFFF),
                     leaf(7, 0, 0, 0xFFFFFFFF, 0, 0), leaf(0xD, 0, 7, 0, 0, 0),
                     leaf(0x80000001, 0, 0, 0, 0, 0xFFFFFFFF),
                     leaf(0x40000001, 0, 0x1234, 0, 0, 0)};
  auto out = filter_cpuid(in, CpuidPolicy{});
  ASSERT_EQ(out.size(), 4u);  // leaf 0xD gone
  std::uint32_t ecx1 = out[0].ecx;
  EXPECT_EQ(ecx1 & (1u << 26), 0u) << "XSAVE";
  EXPECT_EQ(ecx1 & (1u << 27), 0u) << "OSXSAVE";
  EXPECT_EQ(ecx1 & (1u << 28), 0u) << "AVX";
  EXPECT_EQ(ecx1 & (1u << 23), 0u) << "POPCNT";
  EXPECT_EQ(ecx1 & (1u << 20), 0u) << "SSE4.2";
  EXPECT_EQ(ecx1 & (1u << 13), 0u) << "CX16";
  EXPECT_NE(ecx1 & (1u << 21), 0u) << "x2APIC kept by default";
  EXPECT_NE(ecx1 & (1u << 24), 0u) << "TSC deadline kept";
  EXPECT_NE(ecx1 & (1u << 0), 0u) << "SSE3 untouched";
  EXPECT_EQ(out[1].ebx & (1u << 5), 0u) << "AVX2";
  EXPECT_EQ(out[2].edx & (1u << 27), 0u) << "RDTSCP";
  EXPECT_EQ(out[3].eax, 0u) << "KVM PV features";

  CpuidPolicy p;
  p.hide_x2apic = true;
  EXPECT_EQ(filter_cpuid(in, p)[0].ecx & (1u << 21), 0u);
}

TEST(CpuidTest, EachVcpuIsItsOwnPackageWithoutSharedL3) {
  CpuidEntries in = {leaf(0x80000006, 0, 0, 0, 0x02008140, 0x02006140),
                     leaf(0x80000008, 0, 0x3030, 0, 0x7007, 0)};
  auto out = filter_cpuid(in, CpuidPolicy{});
  EXPECT_EQ(out[0].edx, 0u) << "no L3";
  EXPECT_EQ(out[0].ecx, 0x02008140u) << "L2 kept";
  EXPECT_EQ(out[1].ecx, 0u) << "one core, no core bits in the APIC id";
  EXPECT_EQ(out[1].eax, 0x3030u) << "address sizes kept";
}

TEST(CpuidTest, TheTscIsInvariant) {
  CpuidEntries in = {leaf(0x80000007, 0, 0, 0, 0, 0x1)};
  EXPECT_EQ(filter_cpuid(in, CpuidPolicy{})[0].edx, 0x101u) << "bit 8 set, the rest kept";
  CpuidPolicy p;
  p.invariant_tsc = false;
  EXPECT_EQ(filter_cpuid(in, p)[0].edx, 0x1u);
}

TEST(CpuidTest, ApicIdGoesIntoLeaf1AndLeafB) {
  CpuidEntries in = {leaf(1, 0, 0, 0x00010800, 0, 0), leaf(0xB, 0, 1, 1, 0x100, 0),
                     leaf(0xB, 1, 4, 4, 0x201, 0)};
  auto out = set_cpuid_apic_id(in, 5);
  EXPECT_EQ(out[0].ebx, 0x05010800u);
  EXPECT_EQ(out[1].edx, 5u);
  EXPECT_EQ(out[2].edx, 5u);
}

TEST(ExitTest, InternalErrorDescriptionCarriesInstructionBytes) {
  VcpuExit e;
  e.kind = ExitKind::kInternalError;
  e.internal.suberror = 1;
  e.internal.insn_bytes = {0x66, 0x0f, 0xef, 0xc0};
  auto s = describe(e);
  EXPECT_NE(s.find("66 0f ef c0"), std::string::npos) << s;
  EXPECT_NE(s.find("emulation"), std::string::npos) << s;
}

TEST(ExitRequestTest, FirstRequestWinsAndListenersRunOnce) {
  ExitRequest r;
  int calls = 0;
  r.add_listener([&] { ++calls; });
  EXPECT_FALSE(r.requested());
  EXPECT_TRUE(r.request(3));
  EXPECT_FALSE(r.request(7));
  EXPECT_EQ(r.exit_code(), 3);
  EXPECT_EQ(calls, 1);
  int late = 0;
  r.add_listener([&] { ++late; });  // already requested: called at once
  EXPECT_EQ(late, 1);
}

}  // namespace
}  // namespace ssi::vcpu

namespace ssi::vcpu {
namespace {

TEST(OpenKvmTest, MissingDeviceIsUnsupportedWithTheReason) {
  auto r = open_kvm("/nonexistent/kvm");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnsupported);
  EXPECT_NE(r.error().message.find("/nonexistent/kvm"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace ssi::vcpu
