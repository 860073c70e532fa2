// Real KVM: ssi's completion of `int $n` (for KVMs whose emulator rejects it)
// has the same effect as the CPU executing it: same handler, same frame.
// Skips without /dev/kvm (run it in scripts/kvm-vm).
#include <gtest/gtest.h>

#include <cstring>

#include "ssi/insn_fallback.hpp"
#include "vcpu/kvm_host.hpp"
#include "vcpu/kvm_abi.hpp"
#include "vcpu/long_mode_guest.hpp"

namespace ssi::machine {
namespace {

using vcpu::ExitKind;

constexpr std::uint64_t kHandler = 0x1100;

// The guest: int $0x21; out 0x11, al; hlt. The handler reports the frame's
// RIP and CS low bytes on port 0x10 and the RFLAGS.IF it runs with, then iretq.
struct IntNGuest {
  std::vector<std::uint8_t> code = {0xcd, 0x21, 0xe6, 0x11, 0xf4};
  std::vector<std::uint8_t> handler = {
      0x48, 0x8b, 0x04, 0x24,        // mov rax, [rsp]     (return RIP)
      0xe6, 0x10,                    // out 0x10, al
      0x48, 0x8b, 0x44, 0x24, 0x08,  // mov rax, [rsp+8]   (CS)
      0xe6, 0x10,                    // out 0x10, al
      0x48, 0xcf};                   // iretq
};

// Runs to the HLT; returns every byte written to port 0x10 / 0x11 in order.
std::vector<std::pair<std::uint16_t, std::uint8_t>> run_to_hlt(vcpu::Vcpu& v) {
  std::vector<std::pair<std::uint16_t, std::uint8_t>> outs;
  for (int i = 0; i < 10; ++i) {
    auto e = v.run();
    if (!e.ok()) {
      ADD_FAILURE() << e.error().to_string();
      break;
    }
    if (e->kind == ExitKind::kHlt) break;
    if (e->kind != ExitKind::kIo) {
      ADD_FAILURE() << "unexpected exit: " << vcpu::describe(*e);
      break;
    }
    outs.push_back({e->io.port, e->io.data[0]});
  }
  return outs;
}

struct InsnFallbackKvmTest : ::testing::Test {
  void SetUp() override {
    if (auto h = vcpu::probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
    auto h = vcpu::open_kvm();
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    hv = std::move(*h);
  }
  vcpu::Vcpu* boot() {
    vcpu::Vcpu* v = guest.boot(*hv, program.code);
    std::memcpy(guest.mem() + kHandler, program.handler.data(), program.handler.size());
    guest.set_gate(0x21, kHandler);
    return v;
  }
  std::unique_ptr<vcpu::Hypervisor> hv;
  vcpu::testing::LongModeGuest guest;
  IntNGuest program;
};

const std::vector<std::pair<std::uint16_t, std::uint8_t>> kExpected = {
    {0x10, 0x02},  // return RIP 0x1002: past the 2-byte int
    {0x10, 0x08},  // CS 8
    {0x11, 0x08}};  // back after the int, al still as the handler left it

TEST_F(InsnFallbackKvmTest, CpuExecutingIntNIsTheReference) {
  vcpu::Vcpu* v = boot();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(run_to_hlt(*v), kExpected);
}

TEST_F(InsnFallbackKvmTest, CompletedIntNMatchesTheCpu) {
  vcpu::Vcpu* v = boot();
  ASSERT_NE(v, nullptr);
  // What KVM reports when its emulator rejects the instruction at RIP 0x1000.
  vcpu::VcpuExit e;
  e.kind = ExitKind::kInternalError;
  e.internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
  e.internal.insn_bytes = {0xcd, 0x21};
  auto r = handle_internal_error(*v, e);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(run_to_hlt(*v), kExpected);
}

}  // namespace
}  // namespace ssi::machine
