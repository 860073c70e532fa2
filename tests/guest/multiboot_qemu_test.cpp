// mbtest (multiboot/mbtest.c), a QEMU-convention test kernel, booted two
// ways under QEMU/TCG: by ssi's multiboot loader (with ssi's ACPI tables,
// SRAT/SLIT for the configured nodes) through the entry shim, and by QEMU's
// own -kernel loader as the reference. The kernel checks the multiboot info,
// the module, fw_cfg and ACPI against its command line and reports through
// isa-debug-exit: exit status 1 = (0 << 1) | 1 = every check passed.
#include <gtest/gtest.h>

#include <fstream>

#include "foreign_qemu.hpp"
#include "ssi/elf_loader.hpp"

namespace ssi::machine {
namespace {

constexpr std::uint64_t kMem = 64 * kMiB;
const std::vector<std::uint8_t> kModule = {'S', 'S', 'I', 'M', 'O', 'D', '-',
                                           'p', 'a', 'y', 'l', 'o', 'a', 'd'};

struct MbCase {
  unsigned vcpus, nodes;
};

class MultibootQemu : public ::testing::TestWithParam<MbCase> {
 protected:
  void SetUp() override {
    if (::access(kQemuBinary, X_OK) != 0) GTEST_SKIP() << "no " << kQemuBinary;
  }
  static void expect_pass(const ssi::testing::ProcessOutcome& o) {
    EXPECT_FALSE(o.timed_out) << o.out;
    EXPECT_EQ(o.exit_code, 1) << "stdout:\n" << o.out << "\nstderr:\n" << o.err;
    EXPECT_NE(o.out.find("mbtest: PASS"), std::string::npos) << o.out;
  }
};

TEST_P(MultibootQemu, SsiLoaderBootsItAndEveryCheckPasses) {
  const MbCase c = GetParam();
  auto kernel = read_file(SSI_MBTEST, 1 << 20).value();
  ASSERT_EQ(detect_kernel(kernel).value(), KernelKind::kMultiboot);
  const std::string cmdline = "cpus=" + std::to_string(c.vcpus) +
                              " mem=64 nodes=" + std::to_string(c.nodes) + " module=SSIMOD";
  ForeignQemu q;
  ASSERT_TRUE(q.load(KernelKind::kMultiboot, kernel, kMem,
                     {.vcpus = c.vcpus,
                      .nodes = c.nodes,
                      .cmdline = cmdline,
                      .initrd = kModule,
                      .initrd_name = "module.bin"}));
  auto o = q.run(c.vcpus, std::chrono::seconds(60));
  expect_pass(o);
  const std::string n = std::to_string(c.vcpus), k = std::to_string(c.nodes);
  EXPECT_NE(o.out.find("fw_cfg: signature=QEMU cpus=" + n + " ram_mib=64"), std::string::npos);
  EXPECT_NE(
      o.out.find("acpi: lapics=" + n + " srat_cpus=" + n + " memory_domains=" + k + " slit=" + k),
      std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("string=module.bin"), std::string::npos) << o.out;
  std::printf("%s", o.out.c_str());
}

INSTANTIATE_TEST_SUITE_P(Tcg, MultibootQemu, ::testing::Values(MbCase{1, 1}, MbCase{2, 2}),
                         [](const auto& info) {
                           return std::to_string(info.param.vcpus) + "vcpu_" +
                                  std::to_string(info.param.nodes) + "node";
                         });

// The reference: QEMU's own multiboot loader (with SeaBIOS and QEMU's ACPI)
// accepts the same kernel, so mbtest follows the convention and is not
// tailored to ssi.
TEST(MultibootQemuReference, QemuOwnLoaderBootsTheSameKernel) {
  if (::access(kQemuBinary, X_OK) != 0) GTEST_SKIP() << "no " << kQemuBinary;
  ForeignQemu q;  // only for its temporary directory
  const std::string module = q.dir() + "/module.bin";
  std::ofstream(module, std::ios::binary)
      .write(reinterpret_cast<const char*>(kModule.data()),
             static_cast<std::streamsize>(kModule.size()));
  auto o = ssi::testing::run_process(kQemuBinary,
                                     {"-machine",
                                      "pc",
                                      "-accel",
                                      "tcg",
                                      "-smp",
                                      "2",
                                      "-m",
                                      "64M",
                                      "-display",
                                      "none",
                                      "-serial",
                                      "stdio",
                                      "-monitor",
                                      "none",
                                      "-no-reboot",
                                      "-device",
                                      "isa-debug-exit,iobase=0xf4,iosize=0x04",
                                      "-kernel",
                                      SSI_MBTEST,
                                      "-initrd",
                                      module,
                                      "-append",
                                      "cpus=2 mem=64 module=SSIMOD"},
                                     {}, std::chrono::seconds(60));
  EXPECT_EQ(o.exit_code, 1) << "stdout:\n" << o.out << "\nstderr:\n" << o.err;
  EXPECT_NE(o.out.find("mbtest: PASS"), std::string::npos) << o.out;
}

}  // namespace
}  // namespace ssi::machine
