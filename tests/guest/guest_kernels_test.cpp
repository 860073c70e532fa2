// The guest kernels built from tests/guest/: each must be a valid ssi kernel
// (ssi's own ELF loader + boot builder accept it), contain no instruction the
// kvm_pvm emulator rejects (their runs under KVM: guest_kvm_test).
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "ssi/boot.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/subprocess.hpp"
#include "kernel_cases.hpp"

namespace ssi::machine {
namespace {

class GuestKernel : public ::testing::TestWithParam<std::string> {};

TEST_P(GuestKernel, LoadsWithSsiElfLoaderAndBootBuilder) {
  auto file = read_file(guest_kernel_path(GetParam()), 64 * kMiB);
  ASSERT_TRUE(file.ok()) << file.error().to_string();
  auto map = MemoryMap::pc(16 * kMiB).value();
  auto image = parse_elf(*file, map);
  ASSERT_TRUE(image.ok()) << image.error().to_string();
  EXPECT_EQ(image->entry, kBootAreaEnd);  // link.ld puts _start first, at 1 MiB
  std::vector<std::uint8_t> backing(map.ram_bytes());
  auto ram = GuestRam::make(map, backing).value();
  ASSERT_TRUE(load_elf(*image, *file, ram).ok());
  auto layout = build_boot_area(ram, {.cpu_count = 4, .kernel_entry = image->entry,
                                      .kernel_end = image->end()});
  ASSERT_TRUE(layout.ok()) << layout.error().to_string();
  // _start begins with cli (0xfa): the entry really is the code we wrote.
  EXPECT_EQ(ram.read_value<std::uint8_t>(Gpa{image->entry}).value(), 0xFA);
}

// Mnemonics the kvm-pvm emulator fails on at CPL0 (docs/kvm.md), as objdump prints them.
TEST_P(GuestKernel, ContainsNoInstructionTheEmulatorRejects) {
  if (::access("/usr/bin/objdump", X_OK) != 0) GTEST_SKIP() << "no objdump";
  std::string cmd = "/usr/bin/objdump -d --no-show-raw-insn " + guest_kernel_path(GetParam());
  std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
  ASSERT_NE(p, nullptr);
  const std::vector<std::string> banned{"%xmm", "%ymm", "%mm", "%st", "popcnt", "cmpxchg16b",
                                        "rdtscp", "xsave", "xgetbv", "crc32", "rep movsb",
                                        "rep stos %al", "fld", "fstp"};
  char line[512];
  int instructions = 0;
  while (std::fgets(line, sizeof line, p.get())) {
    std::string l(line);
    if (l.find(":\t") == std::string::npos) continue;
    ++instructions;
    for (const auto& b : banned) EXPECT_EQ(l.find(b), std::string::npos) << l;
  }
  EXPECT_GT(instructions, 100);
}

// `ssi run` accepts the kernel: every check before opening KVM passes (the
// device is pointed at a missing path so the run stops right there).
TEST_P(GuestKernel, PassesSsiRunChecksUpToKvm) {
  auto o = ssi::testing::run_process(
      SSI_BINARY, {"run", "--vcpus", "4", "--mem", "64M", "--kernel", guest_kernel_path(GetParam())},
      {"SSI_KVM_DEVICE=/nonexistent/kvm"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err,
            "ssi: error: /nonexistent/kvm: No such file or directory (KVM is required to run "
            "guests)\n");
}

INSTANTIATE_TEST_SUITE_P(Kernels, GuestKernel, ::testing::ValuesIn(guest_kernels()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ssi::machine
