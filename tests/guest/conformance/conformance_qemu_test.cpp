// The reference: the conformance kernel under QEMU (TCG, `pc` machine,
// -cpu max, QEMU's own multiboot loader). It must print expected.txt except
// where reference_differences.txt documents what this QEMU does instead.
#include <gtest/gtest.h>
#include <unistd.h>

#include "conformance.hpp"
#include "ssi/subprocess.hpp"

namespace ssi::conformance {
namespace {

constexpr const char* kQemu = "/usr/bin/qemu-system-x86_64";

TEST(ConformanceReference, QemuPrintsExpectedExceptDocumentedDifferences) {
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << "no " << kQemu;
  auto o = ssi::testing::run_process(
      kQemu,
      {"-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "64", "-kernel",
       SSI_CONFORM_KERNEL, "-display", "none", "-serial", "stdio", "-monitor", "none",
       "-no-reboot", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"},
      {}, std::chrono::seconds(60));
  ASSERT_FALSE(o.timed_out) << o.out << o.err;
  Results want = read_table("expected.txt", nullptr);
  ASSERT_FALSE(want.empty()) << "expected.txt unreadable";
  std::map<std::string, std::string> reasons;
  int failing = 0;
  for (const auto& [name, status] : read_table("reference_differences.txt", &reasons)) {
    ASSERT_TRUE(want.count(name)) << "documented difference for unknown check " << name;
    ASSERT_FALSE(reasons[name].empty()) << "difference without a reason: " << name;
    if (status == "absent")
      want.erase(name);
    else
      want[name] = status;
    failing += status == "FAIL";
  }
  EXPECT_EQ(diff(parse_output(o.out), want), "") << o.out << o.err;
  EXPECT_EQ(o.exit_code, (failing << 1) | 1)
      << "isa-debug-exit carries the number of failed checks\n" << o.out;
}

}  // namespace
}  // namespace ssi::conformance
