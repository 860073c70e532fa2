// The reference on any host: the conformance kernel under QEMU/TCG (`pc`,
// -cpu max). It must print expected.txt except where
// reference_differences.txt documents what this QEMU does instead.
#include "conformance.hpp"

namespace ssi::conformance {
namespace {

TEST(ConformanceReference, QemuTcgPrintsExpectedExceptDocumentedDifferences) {
  if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << "no " << kQemu;
  expect_reference("tcg", "max", "reference_differences.txt");
}

}  // namespace
}  // namespace ssi::conformance
