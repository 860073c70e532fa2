// Runs each guest kernel under QEMU (TCG, no KVM needed) on 1, 2 and 4 CPUs,
// booted like ssi boots it: ssi's loader validates the kernel, ssi's boot
// builder writes the boot area (given to QEMU as a raw image), and a small
// BIOS shim (qemu/entry_shim.S) enters the boot builder's BSP state (long
// mode at the kernel entry, rdi = boot info) from a hand-off block.
// APs start through INIT/SIPI in real mode, i.e. the runtime's real-mode
// trampoline path. Skips when qemu-system-x86_64 is not installed.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "kernel_cases.hpp"
#include "qemu_handoff.hpp"
#include "ssi/boot.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/subprocess.hpp"

namespace ssi::machine {
namespace {

constexpr const char* kQemu = "/usr/bin/qemu-system-x86_64";
constexpr std::uint64_t kMem = 64 * kMiB;
constexpr std::uint64_t kBootImageBytes = kPageTablesEnd;  // QEMU has no RAM at 0xA0000..1 MiB


class GuestQemu : public ::testing::TestWithParam<RunCase> {
 protected:
  void SetUp() override {
    if (::access(kQemu, X_OK) != 0) GTEST_SKIP() << "no " << kQemu;
    char tmpl[] = "/tmp/ssi-qemu-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  // ssi's loader + boot builder -> the boot area as a raw image file.
  std::string boot_image(const std::string& kernel, unsigned vcpus) {
    auto file = read_file(kernel, kMem);
    EXPECT_TRUE(file.ok()) << file.error().to_string();
    auto map = MemoryMap::pc(kMem).value();
    auto image = parse_elf(*file, map);
    EXPECT_TRUE(image.ok()) << image.error().to_string();
    std::vector<std::uint8_t> backing(map.ram_bytes());
    auto ram = GuestRam::make(map, backing).value();
    auto layout = build_boot_area(ram, {.cpu_count = vcpus, .kernel_entry = image->entry,
                                        .kernel_end = image->end()});
    EXPECT_TRUE(layout.ok()) << layout.error().to_string();
    if (layout.ok()) write_qemu_handoff(ram, layout->bsp_state(), ShimMode::kLong64);
    std::string path = dir_ + "/boot.bin";
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(backing.data()), kBootImageBytes);
    return path;
  }

  std::string dir_;
};

TEST_P(GuestQemu, ExitsZeroWithExpectedSerialOutput) {
  const RunCase& c = GetParam();
  const std::string kernel = guest_kernel_path(c.kernel);
  const std::string boot = boot_image(kernel, c.vcpus);
  auto o = ssi::testing::run_process(
      kQemu,
      {"-machine", "pc", "-accel", "tcg", "-smp", std::to_string(c.vcpus), "-m", "64M", "-bios",
       SSI_ENTRY_SHIM, "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
       "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-device",
       "loader,file=" + boot + ",addr=0,force-raw=on", "-device", "loader,file=" + kernel},
      {}, std::chrono::seconds(90));
  EXPECT_FALSE(o.timed_out) << o.out;
  // isa-debug-exit: the guest's code 0 arrives as (0 << 1) | 1.
  EXPECT_EQ(o.exit_code, 1) << "stdout:\n" << o.out << "\nstderr:\n" << o.err;
  for (const auto& s : expected_output(c)) {
    EXPECT_NE(o.out.find(s), std::string::npos) << "missing '" << s << "' in:\n" << o.out;
  }
  std::printf("%s", o.out.c_str());
}

INSTANTIATE_TEST_SUITE_P(Tcg, GuestQemu, ::testing::ValuesIn(guest_run_cases()),
                         [](const auto& info) { return run_case_name(info.param); });

}  // namespace
}  // namespace ssi::machine
