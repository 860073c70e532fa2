// ssi's guest kernels under `ssi run` on a real KVM: every kernel on one node
// at 1, 2 and 4 vCPUs, and across node processes (2 nodes over tcp, 4 over
// shm). Each run must exit 0 and print what the kernel prints when its own
// checks pass. Skips, with the reason, on a host without a usable /dev/kvm:
// scripts/test runs this binary again inside the KVM test VM (kvm-amd).
#include <x86intrin.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "kernel_cases.hpp"
#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"
#include "workloads.h"

namespace ssi::machine {
namespace {

using namespace std::chrono_literals;

const vcpu::KvmHost& kvm_host() {
  static const vcpu::KvmHost host = vcpu::probe_kvm_host();
  return host;
}

// A macro: GTEST_SKIP only leaves the function it is written in.
#define SKIP_WITHOUT_KVM() \
  if (!kvm_host().usable) GTEST_SKIP() << kvm_host().reason

void expect_passed(const ssi::testing::ProcessOutcome& o, const RunCase& c) {
  EXPECT_FALSE(o.timed_out);
  EXPECT_EQ(o.exit_code, 0) << "stdout:\n" << o.out << "\nstderr:\n" << o.err;
  for (const auto& s : expected_output(c)) {
    EXPECT_NE(o.out.find(s), std::string::npos) << s << "\n" << o.out << o.err;
  }
}

// Ring-3 code must run at the speed of host code (natively on hardware KVM,
// at the same emulated speed inside the TCG test VM).
void expect_native_ring3(const std::string& out) {
  auto pos = out.find("tsc_cycles=");
  ASSERT_NE(pos, std::string::npos);
  double guest = std::stod(out.substr(pos + 11));
  unsigned long long t0 = __rdtsc();
  volatile std::uint64_t sink = ssi_compute_loop(SSI_COMPUTE_ITERATIONS);
  double host = static_cast<double>(__rdtsc() - t0);
  (void)sink;
  std::printf("compute: guest ring 3 %.0f tsc cycles, host %.0f, ratio %.2f\n", guest, host,
              guest / host);
  EXPECT_LT(guest / host, 4.0) << "ring-3 code should run natively";
}

std::vector<std::string> run_args(const std::string& kernel, unsigned nodes, unsigned vcpus,
                                  const std::string& transport) {
  std::vector<std::string> a{"run", "--nodes", std::to_string(nodes), "--vcpus",
                             std::to_string(vcpus), "--mem", "64M", "--kernel",
                             guest_kernel_path(kernel)};
  if (nodes > 1) a.insert(a.end(), {"--transport", transport});
  return a;
}

// --- one node ---

class GuestRun : public ::testing::TestWithParam<RunCase> {};

TEST_P(GuestRun, ExitsZeroWithExpectedSerialOutput) {
  SKIP_WITHOUT_KVM();
  const RunCase& c = GetParam();
  auto o = ssi::testing::run_process(SSI_BINARY, run_args(c.kernel, 1, c.vcpus, ""), {}, 300s);
  expect_passed(o, c);
  if (c.kernel == "compute") expect_native_ring3(o.out);
}

INSTANTIATE_TEST_SUITE_P(Kvm, GuestRun, ::testing::ValuesIn(guest_run_cases()),
                         [](const auto& info) { return run_case_name(info.param); });

// --- across node processes ---

struct NodesCase {
  std::string kernel;
  unsigned nodes, vcpus;
  std::string transport;
};

void PrintTo(const NodesCase& c, std::ostream* os) {
  *os << c.kernel << " x" << c.vcpus << " vCPUs on " << c.nodes << " nodes over " << c.transport;
}

std::vector<NodesCase> nodes_cases() {
  std::vector<NodesCase> out;
  for (const auto& k : guest_kernels()) {
    out.push_back({k, 2, 4, "tcp"});
    out.push_back({k, 4, 4, "shm"});
  }
  return out;
}

class GuestAcrossNodes : public ::testing::TestWithParam<NodesCase> {};

TEST_P(GuestAcrossNodes, ExitsZeroWithExpectedOutput) {
  SKIP_WITHOUT_KVM();
  const NodesCase& c = GetParam();
  auto o = ssi::testing::run_process(SSI_BINARY, run_args(c.kernel, c.nodes, c.vcpus, c.transport),
                                     {}, 1200s);
  expect_passed(o, RunCase{c.kernel, c.vcpus});
  if (c.kernel == "compute") expect_native_ring3(o.out);
}

INSTANTIATE_TEST_SUITE_P(Kvm, GuestAcrossNodes, ::testing::ValuesIn(nodes_cases()),
                         [](const auto& info) {
                           return info.param.kernel + "_" + std::to_string(info.param.nodes) +
                                  "nodes_" + info.param.transport;
                         });

}  // namespace
}  // namespace ssi::machine
