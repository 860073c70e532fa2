#include "ssi/insn_fallback.hpp"

#include <gtest/gtest.h>
#include "vcpu/kvm_abi.hpp"

#include "vcpu/fake_vcpu.hpp"

namespace ssi::machine {
namespace {

using vcpu::testing::FakeVcpu;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint16_t kFcwDefault = 0x37F;  // every x87 exception masked (after fninit)

vcpu::VcpuExit emulation_failure(Bytes bytes) {
  vcpu::VcpuExit e;
  e.kind = vcpu::ExitKind::kInternalError;
  e.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
  e.internal.insn_bytes = std::move(bytes);
  return e;
}

TEST(InsnDecisionTest, Int3InjectsBreakpoint) {
  auto d = decide_unsupported(Bytes{0xCC, 0x90}, 0, kFcwDefault);
  EXPECT_EQ(d.action, InsnAction::kInjectBreakpoint);
  EXPECT_EQ(d.length, 1);
  auto d2 = decide_unsupported(Bytes{0xCD, 0x03}, 0, kFcwDefault);
  EXPECT_EQ(d2.action, InsnAction::kInjectBreakpoint);
  EXPECT_EQ(d2.length, 2);
}

TEST(InsnDecisionTest, IntNDeliversVectorN) {
  for (std::uint8_t n : {0x00, 0x0e, 0x21, 0x80, 0xff}) {
    auto d = decide_unsupported(Bytes{0xCD, n}, 0, kFcwDefault);
    EXPECT_EQ(d.action, InsnAction::kSoftwareInterrupt) << int(n);
    EXPECT_EQ(d.length, 2);
    EXPECT_EQ(d.vector, n);
  }
  EXPECT_EQ(decide_unsupported(Bytes{0xCD}, 0, kFcwDefault).action, InsnAction::kStop)
      << "truncated bytes are not guessed";
}

TEST(InsnDecisionTest, FwaitIsSkippedOnlyWithoutAPendingX87Exception) {
  EXPECT_EQ(decide_unsupported(Bytes{0x9B}, 0, kFcwDefault).action, InsnAction::kSkip);
  // A masked exception flag (ZE with ZM set) is not pending.
  EXPECT_EQ(decide_unsupported(Bytes{0x9B}, 0x0004, kFcwDefault).action, InsnAction::kSkip);
  // Unmasked ZE (fcw without ZM), or the summary bit: fwait would raise #MF.
  auto d = decide_unsupported(Bytes{0x9B}, 0x0004, kFcwDefault & ~0x4);
  EXPECT_EQ(d.action, InsnAction::kStop);
  EXPECT_NE(d.reason.find("pending x87 exception"), std::string::npos);
  EXPECT_EQ(decide_unsupported(Bytes{0x9B}, 0x0080, kFcwDefault).action, InsnAction::kStop);
}

TEST(InsnDecisionTest, EverythingElseStops) {
  for (const Bytes& b :
       {Bytes{0x0F, 0xAE, 0x20}, Bytes{0x0F, 0x01, 0xD0}, Bytes{0x66, 0x0F, 0xEF, 0xC0},
        Bytes{0xF0, 0x48, 0x0F, 0xC7, 0x0E}, Bytes{}}) {
    EXPECT_EQ(decide_unsupported(b, 0, kFcwDefault).action, InsnAction::kStop);
  }
}

TEST(InsnFallbackTest, Int3AdvancesRipAndQueuesBreakpoint) {
  FakeVcpu v(VcpuId{0});
  v.regs.rip = 0x1000;
  ASSERT_TRUE(handle_internal_error(v, emulation_failure({0xCC})).ok());
  EXPECT_EQ(v.regs.rip, 0x1001u) << "#BP is a trap: the handler sees the next RIP";
  EXPECT_EQ(v.events.exception.injected, 1);
  EXPECT_EQ(v.events.exception.nr, 3);
  EXPECT_EQ(v.events.exception.has_error_code, 0);
}

TEST(InsnFallbackTest, IntNAtCpl0AdvancesRipAndInjectsVectorN) {
  FakeVcpu v(VcpuId{0});
  v.regs.rip = 0x1000;
  v.sregs.cr0 = 0x80000011;
  v.sregs.cs.dpl = 0;
  ASSERT_TRUE(handle_internal_error(v, emulation_failure({0xCD, 0x21})).ok());
  EXPECT_EQ(v.regs.rip, 0x1002u) << "the handler returns past the int";
  EXPECT_EQ(v.events.interrupt.injected, 1);
  EXPECT_EQ(v.events.interrupt.nr, 0x21);
  EXPECT_EQ(v.events.exception.injected, 0) << "no error code, not an exception";
}

TEST(InsnFallbackTest, IntNAboveCpl0StopsWithOneLine) {
  FakeVcpu v(VcpuId{0});
  v.regs.rip = 0x401000;
  v.sregs.cr0 = 0x80000011;
  v.sregs.cs.dpl = 3;
  auto r = handle_internal_error(v, emulation_failure({0xCD, 0x80}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "unsupported instruction at rip 0x401000: cd 80 (int $0x80 at CPL 3 is not emulated)");
  EXPECT_EQ(v.regs.rip, 0x401000u);
  EXPECT_EQ(v.events.interrupt.injected, 0);
}

TEST(InsnFallbackTest, FwaitIsSkipped) {
  FakeVcpu v(VcpuId{0});
  v.regs.rip = 0x2000;
  v.fpu.fcw = kFcwDefault;
  ASSERT_TRUE(handle_internal_error(v, emulation_failure({0x9B, 0xDB, 0xE2})).ok());
  EXPECT_EQ(v.regs.rip, 0x2001u);
  EXPECT_EQ(v.events.exception.injected, 0);
}

TEST(InsnFallbackTest, UnknownInstructionStopsWithOneLineNamingRipAndBytes) {
  FakeVcpu v(VcpuId{0});
  v.regs.rip = 0xffffffff81000010ull;
  auto r = handle_internal_error(v, emulation_failure({0x0F, 0x01, 0xD0}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kUnsupported);
  EXPECT_EQ(r.error().message,
            "unsupported instruction at rip 0xffffffff81000010: 0f 01 d0 (not emulated by KVM here "
            "nor by ssi)");
  EXPECT_EQ(v.regs.rip, 0xffffffff81000010ull) << "a stopped guest is left as it was";
}

TEST(InsnFallbackTest, OtherInternalErrorsStop) {
  FakeVcpu v(VcpuId{0});
  auto e = emulation_failure({0xCC});
  e.internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
  auto r = handle_internal_error(v, e);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("suberror 3"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace ssi::machine
