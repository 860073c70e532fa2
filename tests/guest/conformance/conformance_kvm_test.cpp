// The conformance kernel under `ssi run` (KVM) on 1 node and on 2 nodes: it
// must print exactly expected.txt (the architectural answers) and exit with
// 0 failed checks. Beside it, the second reference: QEMU on the same KVM
// (in-kernel LAPIC/IOAPIC). Skips without /dev/kvm (run it in scripts/kvm-vm).
#include "conformance.hpp"
#include "vcpu/kvm_host.hpp"

namespace ssi::conformance {
namespace {

class ConformanceSsi : public ::testing::TestWithParam<const char*> {};

TEST_P(ConformanceSsi, PrintsExpected) {
  if (auto h = ssi::vcpu::probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
  const std::string nodes = GetParam();
  auto o = ssi::testing::run_process(
      SSI_BINARY,
      {"run", "--nodes", nodes, "--vcpus", nodes, "--mem", "64M", "--kernel", SSI_CONFORM_KERNEL},
      {}, std::chrono::seconds(240));
  ASSERT_FALSE(o.timed_out) << o.out << o.err;
  Results want = read_table("expected.txt", nullptr);
  ASSERT_FALSE(want.empty()) << "expected.txt unreadable";
  EXPECT_EQ(diff(parse_output(o.out), want), "") << o.out << o.err;
  EXPECT_EQ(o.exit_code, 1) << "0 failed checks -> isa-debug-exit (0 << 1) | 1\n"
                            << o.out << o.err;
}

TEST(ConformanceReference, QemuKvmPrintsExpectedExceptDocumentedDifferences) {
  if (auto h = ssi::vcpu::probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << "no " << kQemu;
  expect_reference("kvm", "host", "reference_kvm_differences.txt");
}

INSTANTIATE_TEST_SUITE_P(Nodes, ConformanceSsi, ::testing::Values("1", "2"),
                         [](const auto& info) { return std::string("nodes") + info.param; });

}  // namespace
}  // namespace ssi::conformance
