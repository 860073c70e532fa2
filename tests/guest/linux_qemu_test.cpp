// A Debian distribution kernel (bzImage, unmodified) booted under QEMU/TCG by
// ssi's Linux loader: ssi's boot_params (e820, command line, initrd), ssi's
// ACPI tables (MADT, SRAT/SLIT for 2 nodes x 1 vCPU) and ssi's page tables
// and 64-bit entry, through qemu/entry_shim.S. The kernel's own log and a
// tiny /init (linux/init.c, reading sysfs) must show the configured CPU
// count, memory, NUMA nodes and distances; /init ends the run through
// isa-debug-exit. Slow (seconds under TCG); skips when QEMU is missing or the
// kernel cannot be fetched from Debian's registry (scripts/fetch-debian-kernel).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <cstdio>
#include <regex>

#include "foreign_qemu.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/linux_boot.hpp"

namespace ssi::machine {
namespace {

constexpr std::uint64_t kMem = 512 * kMiB;

// An initramfs (cpio "newc"): /init, /dev/console, /dev/kmsg.
class Cpio {
 public:
  void dir(const std::string& name) { entry(name, 040755, {}, 0, 0); }
  void file(const std::string& name, const std::vector<std::uint8_t>& data) {
    entry(name, 0100755, data, 0, 0);
  }
  void chardev(const std::string& name, unsigned major, unsigned minor) {
    entry(name, 020600, {}, major, minor);
  }
  std::vector<std::uint8_t> finish() {
    entry("TRAILER!!!", 0, {}, 0, 0);
    return std::move(out_);
  }

 private:
  void entry(const std::string& name, unsigned mode, const std::vector<std::uint8_t>& data,
             unsigned rmajor, unsigned rminor) {
    char hdr[111];
    std::snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X",
                  ++ino_, mode, 0u, 0u, 1u, 0u, data.size(), 0u, 0u, rmajor, rminor,
                  name.size() + 1, 0u);
    out_.insert(out_.end(), hdr, hdr + 110);
    out_.insert(out_.end(), name.begin(), name.end());
    out_.push_back(0);
    pad();
    out_.insert(out_.end(), data.begin(), data.end());
    pad();
  }
  void pad() {
    while (out_.size() % 4) out_.push_back(0);
  }
  std::vector<std::uint8_t> out_;
  unsigned ino_ = 0;
};

std::string fetch_kernel() {
  if (const char* k = std::getenv("SSI_LINUX_BZIMAGE")) return k;
  auto o = ssi::testing::run_process(SSI_FETCH_KERNEL, {}, {}, std::chrono::seconds(180));
  if (o.exit_code != 0) return {};
  std::string path = o.out.substr(0, o.out.find('\n'));
  return ::access(path.c_str(), R_OK) == 0 ? path : std::string();
}

// The host TSC rate in kHz (TCG's guest TSC runs at it), from /proc/cpuinfo.
std::uint64_t host_tsc_khz() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("cpu MHz", 0) == 0) return static_cast<std::uint64_t>(std::stod(line.substr(line.find(':') + 1)) * 1000);
  }
  return 2'000'000;
}

bool has(const std::string& log, const std::string& what) {
  return log.find(what) != std::string::npos;
}

TEST(LinuxQemu, DebianKernelBootsToInitWithSsiBootDataAndAcpi) {
  if (::access(kQemuBinary, X_OK) != 0) GTEST_SKIP() << "no " << kQemuBinary;
  const std::string path = fetch_kernel();
  if (path.empty()) GTEST_SKIP() << "no Debian kernel: scripts/fetch-debian-kernel failed";
  auto kernel = read_file(path, 256 * kMiB).value();
  ASSERT_EQ(detect_kernel(kernel).value(), KernelKind::kLinux);
  auto init = read_file(SSI_LINUX_INIT, 64 * kMiB).value();
  Cpio cpio;
  cpio.dir("dev");
  cpio.chardev("dev/console", 5, 1);
  cpio.chardev("dev/kmsg", 1, 11);
  cpio.file("init", init);
  const auto initrd = cpio.finish();

  // A hardware-reduced FADT tells Linux there is no PIT, PIC or ACPI PM timer
  // (ssi emulates none of them), so its clock must come from the TSC: a
  // known rate (on KVM: kvmclock) and the LAPIC's TSC-deadline mode.
  const std::string cmdline = "console=ttyS0 panic=-1 rdinit=/init tsc_early_khz=" +
                              std::to_string(host_tsc_khz());
  ForeignQemu q;
  ASSERT_TRUE(q.load(KernelKind::kLinux, kernel, kMem,
                     {.vcpus = 2, .nodes = 2, .numa_distance = 40, .cmdline = cmdline,
                      .initrd = initrd}));
  const auto start = std::chrono::steady_clock::now();
  auto o = q.run(2, std::chrono::seconds(150), {"-cpu", "qemu64,+tsc-deadline,+invtsc"});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string& log = o.out;
  EXPECT_FALSE(o.timed_out) << log;
  EXPECT_EQ(o.exit_code, 1) << "init did not reach isa-debug-exit\n" << log << o.err;
  // The kernel found ssi's tables through boot_params.acpi_rsdp_addr.
  EXPECT_TRUE(has(log, "ACPI: RSDP 0x0000000000098000")) << log;
  EXPECT_TRUE(has(log, "ACPI: SRAT 0x")) << log;
  EXPECT_TRUE(has(log, "ACPI: SLIT 0x")) << log;
  EXPECT_TRUE(has(log, "SRAT: PXM 1 -> APIC 0x01 -> Node 1")) << log;
  EXPECT_TRUE(has(log, "smp: Brought up 2 nodes, 2 CPUs")) << log;
  // e820 from ssi: 608 KiB + 511 MiB of RAM.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(Memory: \d+K/(\d+)K available)"))) << log;
  EXPECT_NEAR(std::stod(m[1]), 523872.0, 2048.0) << m[0];
  // Userspace ran and saw what SRAT/SLIT describe.
  EXPECT_TRUE(has(log, "ssi-init: cpus-online 0-1")) << log;
  EXPECT_TRUE(has(log, "ssi-init: nodes-online 0-1")) << log;
  EXPECT_TRUE(has(log, "ssi-init: node0-distance 10 40")) << log;
  EXPECT_TRUE(has(log, "ssi-init: node1-distance 40 10")) << log;
  // A userspace tty write reached the UART: its IRQ 4 is routed (DSDT COM1).
  EXPECT_TRUE(has(log, "ssi-init-tty: hello from /dev/console")) << log;
  std::printf("boot to init exit under QEMU/TCG: %.1f s\n", secs);
  // The whole kernel log on failure, or always with SSI_GUEST_LOG=1.
  if (::testing::Test::HasFailure() || std::getenv("SSI_GUEST_LOG")) std::printf("%s\n", log.c_str());
}

}  // namespace
}  // namespace ssi::machine
