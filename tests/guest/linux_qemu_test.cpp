// A Debian distribution kernel (bzImage, unmodified) booted under QEMU/TCG by
// ssi's Linux loader: ssi's boot_params (e820, command line, initrd), ssi's
// ACPI tables (MADT, SRAT/SLIT for 1 node x 1 vCPU and 2 nodes x 2 vCPUs)
// and ssi's page tables and 64-bit entry, through qemu/entry_shim.S. The kernel's own log and a
// tiny /init (linux/init.c, reading sysfs) must show the configured CPU
// count, memory, NUMA nodes and distances; /init ends the run through
// isa-debug-exit. Slow (seconds under TCG); skips when QEMU is missing or the
// kernel cannot be fetched from Debian's registry (scripts/fetch-debian-kernel).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>

#include "foreign_qemu.hpp"
#include "linux/expected.hpp"
#include "linux/initramfs.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/linux_boot.hpp"

namespace ssi::machine {
namespace {

constexpr std::uint64_t kMem = 512 * kMiB;

// The host TSC rate in kHz (TCG's guest TSC runs at it), from /proc/cpuinfo.
std::uint64_t host_tsc_khz() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("cpu MHz", 0) == 0)
      return static_cast<std::uint64_t>(std::stod(line.substr(line.find(':') + 1)) * 1000);
  }
  return 2'000'000;
}

using guest::expected_lines;
using guest::has;
using guest::LinuxCase;

class LinuxQemu : public ::testing::TestWithParam<LinuxCase> {};

TEST_P(LinuxQemu, DebianKernelBootsToInitWithSsiBootDataAndAcpi) {
  const LinuxCase c = GetParam();
  if (::access(kQemuBinary, X_OK) != 0) GTEST_SKIP() << "no " << kQemuBinary;
  const std::string path = guest::fetch_linux_kernel(SSI_FETCH_KERNEL);
  if (path.empty()) GTEST_SKIP() << "no Debian kernel: scripts/fetch-debian-kernel failed";
  auto kernel = read_file(path, 256 * kMiB).value();
  ASSERT_EQ(detect_kernel(kernel).value(), KernelKind::kLinux);
  auto init = read_file(SSI_LINUX_INIT, 64 * kMiB).value();
  const auto initrd = ssi::guest::test_initramfs(init);

  // A hardware-reduced FADT tells Linux there is no PIT, PIC or ACPI PM timer
  // (ssi emulates none of them), so its clock must come from the TSC: a
  // known rate (on KVM: kvmclock) and the LAPIC's TSC-deadline mode.
  const std::string cmdline =
      "console=ttyS0 panic=-1 rdinit=/init tsc_early_khz=" + std::to_string(host_tsc_khz());
  ForeignQemu q;
  ASSERT_TRUE(q.load(KernelKind::kLinux, kernel, kMem,
                     {.vcpus = c.vcpus,
                      .nodes = c.nodes,
                      .numa_distance = 40,
                      .cmdline = cmdline,
                      .initrd = initrd}));
  const auto start = std::chrono::steady_clock::now();
  auto o = q.run(c.vcpus, std::chrono::seconds(120), {"-cpu", "qemu64,+tsc-deadline,+invtsc"});
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string& log = o.out;
  EXPECT_FALSE(o.timed_out) << log;
  EXPECT_EQ(o.exit_code, 1) << "init did not reach isa-debug-exit\n" << log << o.err;
  // The kernel found ssi's tables through boot_params.acpi_rsdp_addr.
  EXPECT_TRUE(has(log, "ACPI: RSDP 0x0000000000098000")) << log;
  EXPECT_TRUE(has(log, "ACPI: SRAT 0x")) << log;
  EXPECT_TRUE(has(log, "ACPI: SLIT 0x")) << log;
  // e820 from ssi: 608 KiB + 511 MiB of RAM.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(Memory: \d+K/(\d+)K available)"))) << log;
  EXPECT_NEAR(std::stod(m[1]), 523872.0, 2048.0) << m[0];
  // The kernel and /init (sysfs) see the CPUs, nodes and distances configured.
  for (const auto& line : expected_lines(c, 40)) EXPECT_TRUE(has(log, line)) << "missing: " << line;
  // A userspace tty write reached the UART: its IRQ 4 is routed (DSDT COM1).
  EXPECT_TRUE(has(log, "ssi-init-tty: hello from /dev/console")) << log;
  std::printf("boot to init exit under QEMU/TCG (%u vCPUs, %u nodes): %.1f s\n", c.vcpus, c.nodes,
              secs);
  // The whole kernel log on failure, or always with SSI_GUEST_LOG=1.
  if (::testing::Test::HasFailure() || std::getenv("SSI_GUEST_LOG"))
    std::printf("%s\n", log.c_str());
}

// The issue's two shapes: 1 node x 1 vCPU and 2 nodes x 2 vCPUs.
INSTANTIATE_TEST_SUITE_P(Tcg, LinuxQemu, ::testing::Values(LinuxCase{1, 1}, LinuxCase{4, 2}),
                         [](const auto& info) {
                           return std::to_string(info.param.nodes) + "node_" +
                                  std::to_string(info.param.vcpus) + "vcpu";
                         });

}  // namespace
}  // namespace ssi::machine
