// Debian's 6.1 cloud kernel (unmodified) under `ssi run` itself on KVM:
// ssi's Linux loader, ACPI tables, IOAPIC and userspace LAPIC (TSC-deadline
// timer; ssi puts tsc_early_khz= on the command line itself), on 1 node x 1
// and 2 vCPUs, and across 2 nodes x 1 vCPU each (with maxcpus=1; both CPUs: disabled). The kernel's log and
// /init (linux/init.c, reading sysfs) must show the CPUs, memory, NUMA nodes and SLIT distances
// configured; /init ends the run through isa-debug-exit and ssi exits with its code. Runs in the
// KVM test VM (scripts/kvm-vm-tests); skips without a usable /dev/kvm or when the kernel cannot be
// fetched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ostream>
#include <regex>
#include <string>

#include "linux/expected.hpp"
#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace {

using ssi::guest::has;
using ssi::guest::LinuxCase;

struct KvmCase {
  LinuxCase shape;
  unsigned remote_distance;  // what `ssi run --nodes` puts in the SLIT
  std::chrono::seconds timeout;
  unsigned maxcpus = 0;  // Linux's maxcpus= (0: start every vCPU)
};

// Readable in ctest's test names (not the 32 bytes of the object).
void PrintTo(const KvmCase& k, std::ostream* os) {
  *os << k.shape.nodes << " node(s) x " << k.shape.vcpus << " vCPU(s)";
  if (k.maxcpus != 0) *os << ", maxcpus=" << k.maxcpus;
}

class LinuxKvm : public ::testing::TestWithParam<KvmCase> {};

TEST_P(LinuxKvm, DebianKernelBootsToInitUnderSsiRun) {
  const KvmCase k = GetParam();
  const LinuxCase c = k.shape;
  if (auto h = ssi::vcpu::probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
  const std::string kernel = ssi::guest::fetch_linux_kernel(SSI_FETCH_KERNEL);
  if (kernel.empty()) GTEST_SKIP() << "no Debian kernel: scripts/fetch-debian-kernel failed";

  std::vector<std::string> args{"run",
                                "--vcpus",
                                std::to_string(c.vcpus),
                                "--nodes",
                                std::to_string(c.nodes),
                                "--mem",
                                "512M",
                                "--kernel",
                                kernel,
                                "--initrd",
                                SSI_LINUX_INITRAMFS,
                                "--append",
                                "console=ttyS0 panic=-1 rdinit=/init"};
  if (k.maxcpus != 0) args.back() += " maxcpus=" + std::to_string(k.maxcpus);
  const auto start = std::chrono::steady_clock::now();
  auto o = ssi::testing::run_process(SSI_BINARY, args, {}, k.timeout);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string& log = o.out;
  ASSERT_FALSE(o.timed_out) << "no exit within " << k.timeout.count() << " s\n" << log << o.err;
  // /init's isa-debug-exit value 0 -> (0 << 1) | 1, and ssi exits with it.
  EXPECT_EQ(o.exit_code, 1) << log << o.err;
  EXPECT_TRUE(has(log, "ssi-init: done")) << log;
  // ssi told Linux the TSC rate (no PIT/HPET/PM timer to measure it with).
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(Command line: .*tsc_early_khz=[1-9]\d+)")))
      << log;
  EXPECT_TRUE(has(log, "TSC deadline timer available")) << log;
  EXPECT_TRUE(has(log, "ACPI: RSDP 0x0000000000098000")) << log;
  EXPECT_TRUE(has(log, "ACPI: SLIT 0x")) << log;
  // e820 from ssi: 608 KiB + 511 MiB of RAM.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(Memory: \d+K/(\d+)K available)"))) << log;
  EXPECT_NEAR(std::stod(m[1]), 523872.0, 2048.0) << m[0];
  for (const auto& line : ssi::guest::expected_lines(c, k.remote_distance, k.maxcpus))
    EXPECT_TRUE(has(log, line)) << "missing: " << line;
  // Timer interrupts work: /init's 200 ms sleep took about that long (the
  // guest clock is the TSC or jiffies; both need the LAPIC timer's ticks).
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(ssi-init: slept 200 ms in (\d+) ms)"))) << log;
  EXPECT_GE(std::stoi(m[1]), 200) << m[0];
  EXPECT_LE(std::stoi(m[1]), 3000) << m[0];
  // A userspace tty write: COM1's IRQ 4 through ssi's IOAPIC.
  EXPECT_TRUE(has(log, "ssi-init-tty: hello from /dev/console")) << log;
  std::printf("Linux boot to init exit under ssi run (%u vCPUs, %u nodes): %.1f s\n", c.vcpus,
              c.nodes, secs);
  if (::testing::Test::HasFailure() || std::getenv("SSI_GUEST_LOG"))
    std::printf("%s\n%s\n", log.c_str(), o.err.c_str());
}

std::string case_name(const ::testing::TestParamInfo<KvmCase>& info) {
  const LinuxCase& c = info.param.shape;
  return std::to_string(c.nodes) + "node_" + std::to_string(c.vcpus) + "vcpu" +
         (info.param.maxcpus ? "_maxcpus" + std::to_string(info.param.maxcpus) : "");
}

// 1 node x 1 vCPU; and 2 node processes with 1 vCPU each where Linux starts
// only the BSP (maxcpus=1): both NUMA nodes, their memory (node 1's half is
// homed on node 1's process) and the SLIT are visible to /init, and the run
// avoids the page-table ping-pong below.
INSTANTIATE_TEST_SUITE_P(
    Kvm, LinuxKvm,
    ::testing::Values(KvmCase{{1, 1}, 20, std::chrono::seconds(600)},
                      KvmCase{{2, 1}, 20, std::chrono::seconds(600)},
                      KvmCase{{2, 2}, 20, std::chrono::seconds(600), /*maxcpus=*/1}),
    case_name);

// Disabled: in the KVM test VM both CPUs come up, but the boot then crawls
// and does not reach /init within the coordinator's 10-minute run phase.
// QEMU/TCG 7.2 walks the nested guest's page tables with write access, so
// every page-table page both vCPUs walk (Linux's kernel page tables are
// shared) moves between the nodes on every walk: ~81,000 write faults of
// ~3.8 ms each on node 1 in 600 s (docs/guests.md, Limits). Run it with
// --gtest_also_run_disabled_tests on a KVM host that is not nested in TCG.
INSTANTIATE_TEST_SUITE_P(DISABLED_KvmAcrossNodes, LinuxKvm,
                         ::testing::Values(KvmCase{{2, 2}, 20, std::chrono::seconds(700)}),
                         case_name);

}  // namespace
