// Debian's 6.1 cloud kernel (unmodified) under `ssi run` itself on KVM:
// ssi's Linux loader, ACPI tables, IOAPIC and userspace LAPIC (TSC-deadline
// timer; ssi puts tsc_early_khz= on the command line itself), on 1 node x 1
// and 2 vCPUs, across 2 nodes x 1 vCPU each, 2 x 2 with maxcpus=1, and 2 nodes x 2 vCPUs with
// both CPUs started (KvmBothCpus: in the KVM test VM only with kvm-amd's shadow paging, below).
// The kernel's log and /init (linux/init.c, reading sysfs) must show the CPUs, memory, NUMA nodes
// and SLIT distances configured, and the wall-clock date from ssi's CMOS RTC; /init ends the run
// through isa-debug-exit and ssi exits with its code. Runs in the KVM test VM
// (scripts/kvm-vm-tests); skips without a usable /dev/kvm or when the kernel cannot be fetched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
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

// Why a run with both CPUs across nodes cannot work here, or "" if it can.
// QEMU/TCG walks a nested guest's page tables with write access; under
// kvm-amd's nested paging (NPT) every page-table page either vCPU walks must
// then be writable on its node, so Linux's shared page tables move between
// the nodes on every walk (docs/guests.md, Limits). With npt=0 KVM walks them
// itself and writes only to set a clear A/D bit, as hardware does.
std::string tcg_npt_obstacle() {
  const char* flavour = std::getenv("SSI_KVM_FLAVOUR");
  if (!flavour || std::string(flavour) != "kvm-amd-in-tcg-vm") return "";
  std::ifstream npt("/sys/module/kvm_amd/parameters/npt");
  std::string v;
  if (!(npt >> v) || v != "Y") return "";
  return "kvm-amd uses nested paging inside QEMU/TCG, whose page walks write every page-table "
         "page: run this case with `scripts/kvm-vm --kvm-amd npt=0` (scripts/kvm-vm-tests does)";
}

TEST_P(LinuxKvm, DebianKernelBootsToInitUnderSsiRun) {
  const KvmCase k = GetParam();
  const LinuxCase c = k.shape;
  if (auto h = ssi::vcpu::probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
  if (c.nodes > 1 && k.maxcpus != 1)
    if (auto why = tcg_npt_obstacle(); !why.empty()) GTEST_SKIP() << why;
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
  // The wall clock from ssi's CMOS RTC (Linux's rtc_cmos; RTC_HCTOSYS sets
  // the system clock from it): this year, as the host says.
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  // (the device is the DSDT's PNP0B00, e.g. "rtc_cmos 00:01")
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(rtc_cmos \S+: registered as rtc0)"))) << log;
  EXPECT_TRUE(std::regex_search(
      log, std::regex(R"(rtc_cmos \S+: setting system clock to )" + std::to_string(utc.tm_year + 1900))))
      << log;
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

// Both CPUs started across 2 node processes: Linux's kernel data and page
// tables are shared between the nodes for real. In the KVM test VM this
// runs only with kvm-amd's shadow paging (tcg_npt_obstacle above), and is
// slow there (every DSM fault costs milliseconds under the emulator):
// about 15 minutes.
INSTANTIATE_TEST_SUITE_P(KvmBothCpus, LinuxKvm,
                         ::testing::Values(KvmCase{{2, 2}, 20, std::chrono::seconds(2300)}),
                         case_name);

}  // namespace
