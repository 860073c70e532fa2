// Real KVM: CR8 writes reach the userspace LAPIC TPR and TPR writes reach CR8.
// Skips without /dev/kvm (run them in scripts/kvm-vm).
#include <mutex>

#include <fmt/format.h>

#include "base/clock.hpp"
#include "vcpu/kvm_host.hpp"
#include "vcpu/long_mode_guest.hpp"
#include "vcpu/lapic.hpp"
#include "vcpu/runner.hpp"

namespace ssi::vcpu::testing {
namespace {

class NullSink final : public IpiSink {
 public:
  void send_ipi(const Ipi&) override {}
};

// Port 0x10 records (al, LAPIC cr8) at that moment; port 0x11 ends the run.
class RecordingIo final : public IoHandler {
 public:
  RecordingIo(ExitRequest& exit, Lapic& lapic) : exit_(exit), lapic_(lapic) {}
  Result<void> pio(VcpuId, std::uint16_t port, bool write, std::span<std::uint8_t> d) override {
    if (write && port == 0x10) outs.push_back({d[0], lapic_.cr8()});
    if (write && port == 0x11) exit_.request(0);
    return ok();
  }
  Result<void> mmio(VcpuId, Gpa gpa, bool, std::span<std::uint8_t>) override {
    return make_error(Errc::kInvalidArgument, fmt::format("stray mmio {:#x}", gpa.value()));
  }
  std::vector<std::pair<std::uint8_t, std::uint8_t>> outs;

 private:
  ExitRequest& exit_;
  Lapic& lapic_;
};

// mov eax, imm8 ; mov cr8, rax
std::vector<std::uint8_t> set_cr8(std::uint8_t v) {
  return {0xb8, v, 0, 0, 0, 0x44, 0x0f, 0x22, 0xc0};
}
void append(std::vector<std::uint8_t>& code, std::vector<std::uint8_t> more) {
  code.insert(code.end(), more.begin(), more.end());
}
constexpr std::uint8_t kOut10[] = {0xe6, 0x10};  // out 0x10, al

struct KvmTprTest : ::testing::Test {
  void SetUp() override {
    if (auto h = probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
    auto h = open_kvm();
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    hv = std::move(*h);
  }
  // Boots `code` and runs it under a VcpuRunner with a BSP LAPIC until it
  // writes port 0x11; the (al, LAPIC cr8) pairs written to port 0x10.
  std::vector<std::pair<std::uint8_t, std::uint8_t>> run_guest(
      const std::vector<std::uint8_t>& code) {
    Vcpu* v = guest.boot(*hv, code);
    if (!v) return {};
    ExitRequest exit;
    RecordingIo io(exit, lapic);
    VcpuRunner runner(*v, lapic, io, exit, SteadyClock::instance());
    auto r = runner.run();
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return io.outs;
  }
  std::unique_ptr<Hypervisor> hv;
  LongModeGuest guest;
  NullSink sink;
  LapicConfig lapic_config = [] {
    LapicConfig lc;
    lc.bsp = true;
    return lc;
  }();
  Lapic lapic{lapic_config, SteadyClock::instance(), sink, nullptr};
};

TEST_F(KvmTprTest, LoweringCr8ExitsWithSetTprAndReportsTheNewValue) {
  std::vector<std::uint8_t> code = set_cr8(5);
  append(code, set_cr8(2));
  append(code, {0xf4});
  Vcpu* v = guest.boot(*hv, code);
  ASSERT_NE(v, nullptr);
  auto e = v->run();
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  if (e->kind == ExitKind::kHlt) GTEST_SKIP() << "this KVM does not intercept CR8 writes";
  ASSERT_EQ(e->kind, ExitKind::kSetTpr) << describe(*e);
  EXPECT_EQ(e->raw_reason, 11u);
  EXPECT_EQ(e->cr8, 2) << "kvm_run->cr8 carries the value the guest wrote";
}

TEST_F(KvmTprTest, RunnerKeepsCr8AndTprEqualBothWays) {
  std::vector<std::uint8_t> code = set_cr8(5);           // raise: no exit of its own
  append(code, {kOut10[0], kOut10[1]});                  // TPR must already be 0x50
  append(code, set_cr8(2));                              // lower: KVM_EXIT_SET_TPR
  append(code, {kOut10[0], kOut10[1]});
  append(code, {0xbb, 0x80, 0x00, 0xe0, 0xfe,            // mov ebx, 0xfee00080
                0xc7, 0x03, 0x70, 0, 0, 0,               // mov dword [rbx], 0x70 (TPR)
                0x44, 0x0f, 0x20, 0xc0});                // mov rax, cr8
  append(code, {kOut10[0], kOut10[1], 0xe6, 0x11, 0xf4});  // out 0x10; out 0x11; hlt
  auto outs = run_guest(code);
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(outs[0].second, 5) << "a CR8 raise reaches the TPR at the next exit";
  EXPECT_EQ(outs[1].second, 2) << "a CR8 lower (SET_TPR exit) reaches the TPR";
  EXPECT_EQ(outs[2].first, 7) << "a TPR written through MMIO is the guest's CR8";
}

// APIC_BASE is filtered to ssi, CPUID is answered by KVM: the runner mirrors
// every APIC_BASE write into KVM so that CPUID.1:EDX.APIC (bit 9) follows EN.
TEST_F(KvmTprTest, CpuidApicFlagFollowsApicBaseEnable) {
  auto toggle_then_report = [](std::vector<std::uint8_t>& code, bool enable) {
    append(code, {0xb9, 0x1b, 0, 0, 0, 0x0f, 0x32});             // mov ecx, 0x1b; rdmsr
    if (enable)
      append(code, {0x0d, 0x00, 0x08, 0x00, 0x00});              // or eax, 0x800
    else
      append(code, {0x25, 0xff, 0xf7, 0xff, 0xff});              // and eax, ~0x800
    append(code, {0x0f, 0x30,                                    // wrmsr
                  0xb8, 1, 0, 0, 0, 0x0f, 0xa2,                  // mov eax, 1; cpuid
                  0x89, 0xd0, 0xc1, 0xe8, 0x09, 0xe6, 0x10});    // eax = edx >> 9; out 0x10
  };
  std::vector<std::uint8_t> code = {0xb8, 1, 0, 0, 0, 0x0f, 0xa2,
                                    0x89, 0xd0, 0xc1, 0xe8, 0x09, 0xe6, 0x10};
  toggle_then_report(code, false);
  toggle_then_report(code, true);
  append(code, {0xe6, 0x11, 0xf4});
  auto outs = run_guest(code);
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(outs[0].first & 1, 1) << "enabled at reset";
  EXPECT_EQ(outs[1].first & 1, 0) << "EN cleared: CPUID.1:EDX.APIC reads 0";
  EXPECT_EQ(outs[2].first & 1, 1) << "EN set again";
  EXPECT_EQ(lapic.apic_base(), 0xFEE00900u);
}

}  // namespace
}  // namespace ssi::vcpu::testing
