// CR8 and the LAPIC TPR are one register (SDM 10.8.6.1). Without an
// in-kernel LAPIC, KVM loads CR8 from kvm_run at every entry and reports it
// at every exit; kvm-amd exits with KVM_EXIT_SET_TPR when the guest lowers it.
#include "runner_fixture.hpp"

namespace ssi::vcpu::testing {
namespace {

TEST_F(RunnerTest, SetTprExitLowersTheLapicTpr) {
  enable_apic();
  vcpu.push_mmio_write(0xFEE00080, {0x50, 0, 0, 0})
      .push_set_tpr(2)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(mmio_read32(lapic, r::kTpr), 0x20u) << "mov cr8 sets TPR = cr8 << 4";
  auto entries = vcpu.cr8_at_entries();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0], 0);
  EXPECT_EQ(entries[1], 5) << "the TPR written through MMIO is CR8 at the next entry";
  EXPECT_EQ(entries[2], 2);
}

TEST_F(RunnerTest, RaisedCr8MasksInterruptsUntilTheGuestLowersIt) {
  enable_apic();
  // The guest raises CR8 to 9 (no exit for a raise), then a device raises
  // vector 0x80: class 8 <= 9 stays pending; after CR8 = 0 it is injected.
  std::vector<std::uint8_t> injected_while_raised{0xEE};
  vcpu.push_io_out(0x3F8, {'a'}).then_cr8(9).then([this] { lapic.raise(0x80); })
      .push_io_out(0x3F8, {'b'})
      .push_set_tpr(0).then([&] { injected_while_raised = vcpu.injected(); })
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_TRUE(injected_while_raised.empty()) << "class 8 <= CR8 9: held back";
  EXPECT_EQ(vcpu.injected(), std::vector<std::uint8_t>{0x80});
  auto entries = vcpu.cr8_at_entries();
  ASSERT_GE(entries.size(), 4u);
  EXPECT_EQ(entries[1], 9);
  EXPECT_EQ(entries.back(), 0);
  EXPECT_EQ(mmio_read32(lapic, r::kTpr), 0u);
}

TEST_F(RunnerTest, TprLowNibbleWrittenThroughMmioSurvivesLaterExits) {
  enable_apic();
  vcpu.push_mmio_write(0xFEE00080, {0x25, 0, 0, 0})
      .push_io_out(0x3F8, {'x'})
      .push_simple(ExitKind::kInterrupted)
      .push_io_out(kExitPort, {0});
  ASSERT_TRUE(runner.run().ok());
  EXPECT_EQ(mmio_read32(lapic, r::kTpr), 0x25u) << "CR8 did not change, so TPR[3:0] stays";
  EXPECT_EQ(vcpu.cr8_at_entries().back(), 2);
}

}  // namespace
}  // namespace ssi::vcpu::testing
