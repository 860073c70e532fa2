// Runs the built `ssi` binary with bad input: every case must exit with code
// 2 and exactly one line on stderr, never a signal (core dump).
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "bzimage_builder.hpp"
#include "elf_builder.hpp"
#include "ssi/subprocess.hpp"

namespace {

using Outcome = ssi::testing::ProcessOutcome;

Outcome run_ssi(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  return ssi::testing::run_process(SSI_BINARY, args, env);
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ssi-cli-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  std::string write_file(const std::string& name, const std::vector<std::uint8_t>& bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string good_kernel() { return write_file("good.elf", ssi::testing::ElfBuilder{}.build()); }

  // Exit code 2, one line on stderr starting "ssi: error: " and containing `needle`.
  static void expect_usage_error(const Outcome& o, const std::string& needle) {
    EXPECT_EQ(o.signal, 0) << "killed by signal " << o.signal;
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_EQ(o.err.rfind("ssi: error: ", 0), 0u) << o.err;
    ASSERT_FALSE(o.err.empty());
    EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "expected exactly one line: " << o.err;
    EXPECT_NE(o.err.find(needle), std::string::npos) << o.err;
  }

  std::string dir_;
};

TEST_F(CliTest, MissingKernelFile) {
  expect_usage_error(run_ssi({"run", "--kernel", dir_ + "/nope.elf"}),
                     "nope.elf: No such file or directory");
}

TEST_F(CliTest, KernelOptionIsRequired) {
  expect_usage_error(run_ssi({"run", "--vcpus", "1"}), "--kernel is required");
}

TEST_F(CliTest, NonElfKernel) {
  auto path = write_file("text.elf", {'h', 'e', 'l', 'l', 'o', '\n'});
  expect_usage_error(run_ssi({"run", "--kernel", path}),
                     "not a kernel ssi can boot (expected a Linux bzImage, a multiboot kernel or "
                     "an ELF64 test kernel)");
}

TEST_F(CliTest, CorruptElfKernel) {
  auto bytes = ssi::testing::ElfBuilder{}.build();
  bytes.resize(70);  // header intact, program headers cut off
  auto path = write_file("cut.elf", bytes);
  expect_usage_error(run_ssi({"run", "--kernel", path}), "program headers");
}

TEST_F(CliTest, OverlappingSegments) {
  ssi::testing::ElfBuilder b;
  b.segments = {{0x100000, {0xF4}, 0x2000, PF_R | PF_X}, {0x101000, {0}, 0x1000, PF_R | PF_W}};
  expect_usage_error(run_ssi({"run", "--kernel", write_file("ovl.elf", b.build())}), "overlap");
}

TEST_F(CliTest, KernelDoesNotFitInMemory) {
  ssi::testing::ElfBuilder b;
  b.segments[0].paddr = 16 << 20;
  b.entry = 16 << 20;
  expect_usage_error(run_ssi({"run", "-m", "8M", "--kernel", write_file("big.elf", b.build())}),
                     "outside guest RAM");
}

TEST_F(CliTest, MemoryTooSmall) {
  expect_usage_error(run_ssi({"run", "-m", "1M", "--kernel", good_kernel()}), "too small");
}

TEST_F(CliTest, MemorySizeGarbage) {
  expect_usage_error(run_ssi({"run", "--mem", "lots", "--kernel", good_kernel()}),
                     "invalid size");
}

TEST_F(CliTest, ZeroVcpus) {
  expect_usage_error(run_ssi({"run", "--vcpus", "0", "--kernel", good_kernel()}),
                     "--vcpus must be at least 1");
}

TEST_F(CliTest, VcpusAboveLimit) {
  expect_usage_error(run_ssi({"run", "--vcpus", "65", "--kernel", good_kernel()}),
                     "above the limit of 64");
}

TEST_F(CliTest, VcpusNotANumber) {
  expect_usage_error(run_ssi({"run", "--vcpus", "many", "--kernel", good_kernel()}), "--vcpus");
}

TEST_F(CliTest, QemuStyleAliases) {
  expect_usage_error(run_ssi({"run", "-smp", "0", "-m", "64M", "-kernel", good_kernel()}),
                     "-smp: '0': '0' is not N or KEY=N");
}

TEST_F(CliTest, MissingKvmDeviceNamesTheDeviceAndWhyItIsNeeded) {
  auto o = run_ssi({"run", "--kernel", good_kernel()}, {"SSI_KVM_DEVICE=" + dir_ + "/kvm"});
  expect_usage_error(o, "");
  EXPECT_EQ(o.err, "ssi: error: " + dir_ +
                       "/kvm: No such file or directory (KVM is required to run guests)\n");
}

TEST_F(CliTest, NoDevKvmOnThisHost) {
  if (::access("/dev/kvm", F_OK) == 0) GTEST_SKIP() << "/dev/kvm exists on this host";
  auto o = run_ssi({"run", "--vcpus", "2", "--mem", "64M", "--kernel", good_kernel()});
  expect_usage_error(o, "");
  EXPECT_EQ(o.err,
            "ssi: error: /dev/kvm: No such file or directory (KVM is required to run guests)\n");
}

TEST_F(CliTest, KvmPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores file permissions";
  auto dev = write_file("kvm", {});
  ASSERT_EQ(::chmod(dev.c_str(), 0), 0);
  auto o = run_ssi({"run", "--kernel", good_kernel()}, {"SSI_KVM_DEVICE=" + dev});
  expect_usage_error(o, "Permission denied (KVM is required to run guests)");
}

// --- Linux bzImage and multiboot kernels (kernel_boot.hpp) ---

std::vector<std::uint8_t> multiboot_aout(std::uint32_t flags_extra = 0) {
  // Flat a.out-kludge kernel loaded at 2 MiB: header at 0, entry just after it.
  std::vector<std::uint8_t> f(64, 0xF4);
  const std::uint32_t flags = 0x10002 | flags_extra, load = 0x200000;
  const std::uint32_t words[8] = {0x1BADB002, flags, 0u - 0x1BADB002u - flags, load, load, 0,
                                  load + 0x1000, load + 32};
  std::memcpy(f.data(), words, sizeof(words));
  return f;
}

TEST_F(CliTest, BzImageWithAnOldProtocol) {
  ssi::testing::BzImageBuilder b;
  b.version = 0x0206;
  expect_usage_error(run_ssi({"run", "--kernel", write_file("old.bzImage", b.build())}),
                     "old.bzImage: boot protocol 2.06 is too old (ssi needs 2.12 or later)");
}

TEST_F(CliTest, BzImageWithoutA64BitEntry) {
  ssi::testing::BzImageBuilder b;
  b.xloadflags = 0;
  expect_usage_error(run_ssi({"run", "--kernel", write_file("k", b.build())}),
                     "no 64-bit entry point");
}

TEST_F(CliTest, InitrdTooLargeForMemory) {
  auto kernel = write_file("k", ssi::testing::BzImageBuilder{}.build());
  auto initrd = write_file("big.img", std::vector<std::uint8_t>(24 << 20, 1));
  expect_usage_error(run_ssi({"run", "-m", "32M", "--kernel", kernel, "--initrd", initrd}),
                     "does not fit");
}

TEST_F(CliTest, MissingInitrdFile) {
  auto kernel = write_file("k", ssi::testing::BzImageBuilder{}.build());
  expect_usage_error(run_ssi({"run", "--kernel", kernel, "--initrd", dir_ + "/nope.img"}),
                     "nope.img: No such file or directory");
}

TEST_F(CliTest, AppendNeedsAForeignKernel) {
  expect_usage_error(run_ssi({"run", "--kernel", good_kernel(), "--append", "console=ttyS0"}),
                     "--initrd and --append need a Linux or multiboot kernel");
}

TEST_F(CliTest, MultibootKernelRequiringVideoModesIsRefused) {
  auto k = write_file("mb", multiboot_aout(1u << 3));
  expect_usage_error(run_ssi({"run", "--kernel", k}), "requires features ssi lacks");
}

// Valid kernels of each foreign kind pass every check and stop only at KVM.
TEST_F(CliTest, ValidForeignKernelsGetAsFarAsKvm) {
  const std::string no_kvm = "SSI_KVM_DEVICE=" + dir_ + "/kvm";
  auto bz = write_file("bz", ssi::testing::BzImageBuilder{}.build());
  auto initrd = write_file("initrd", std::vector<std::uint8_t>(4096, 7));
  auto mb = write_file("mb", multiboot_aout());
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "--vcpus", "2", "--kernel", bz, "--initrd", initrd, "--append", "console=ttyS0"},
           {"run", "-kernel", mb, "-initrd", initrd, "-append", "x=1"}}) {
    expect_usage_error(run_ssi(args, {no_kvm}), "(KVM is required to run guests)");
  }
}

// --- QEMU habits: accepted spellings get as far as KVM ---

TEST_F(CliTest, QemuSpellingsAreAccepted) {
  const std::string no_kvm = "SSI_KVM_DEVICE=" + dir_ + "/kvm";
  auto k = good_kernel();
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"run", "-m", "64", "-kernel", k},  // bare -m is MiB, as in QEMU
           {"run", "-m", "64M", "-smp", "2", "-kernel", k},
           {"run", "-smp", "cpus=2", "-kernel", k},
           {"run", "-smp", "4,sockets=2,cores=2,threads=1", "-kernel", k},
           {"run", "-smp", "sockets=2,cores=2", "-kernel", k},
           {"run", "-nographic", "-serial", "stdio", "-kernel", k}}) {
    expect_usage_error(run_ssi(args, {no_kvm}), "(KVM is required to run guests)");
  }
}

TEST_F(CliTest, BadQemuValuesAreRefusedWhileParsing) {
  auto k = good_kernel();
  expect_usage_error(run_ssi({"run", "-smp", "4,sockets=3", "-kernel", k}),
                     "sockets*cores*threads = 3 is not the 4 CPUs");
  expect_usage_error(run_ssi({"run", "-smp", "cpus=x", "-kernel", k}), "is not N or KEY=N");
  expect_usage_error(run_ssi({"run", "-smp", "2,dragons=1", "-kernel", k}), "unknown key 'dragons'");
  expect_usage_error(run_ssi({"run", "-m", "12X", "-kernel", k}), "unknown suffix 'X'");
  expect_usage_error(run_ssi({"run", "-serial", "tcp::4444", "-kernel", k}), "-serial");
}

TEST_F(CliTest, BadAddressesAndNamesAreRefusedWhileParsing) {
  expect_usage_error(run_ssi({"coordinator", "--listen", "127.0.0.1:70000", "--nodes", "2"}),
                     "port 70000 is out of range (0..65535)");
  expect_usage_error(run_ssi({"coordinator", "--listen", "nohost", "--nodes", "2"}),
                     "is not HOST:PORT");
  expect_usage_error(run_ssi({"node", "--coordinator", "127.0.0.1:0", "--id", "0"}),
                     "port 0 is out of range (1..65535)");
  expect_usage_error(run_ssi({"node", "--coordinator", "127.0.0.1:7470", "--id", "0", "--listen",
                              "tcp:0.0.0.0:99999"}),
                     "port 99999 is out of range");
  expect_usage_error(run_ssi({"node", "--coordinator", "127.0.0.1:7470", "--id", "0", "--transport",
                              "carrier-pigeon"}),
                     "unknown transport 'carrier-pigeon'");
  expect_usage_error(run_ssi({"coordinator", "--nodes", "2", "--workload", "nope"}),
                     "unknown workload 'nope'");
}

TEST_F(CliTest, RunHelpListsOptions) {
  auto o = run_ssi({"run", "--help"});
  EXPECT_EQ(o.exit_code, 0);
  for (const char* qemu : {"-m", "--smp", "--nographic", "--serial", "--json", "-smp"})
    EXPECT_NE(o.out.find(qemu), std::string::npos) << qemu;
  EXPECT_NE(o.out.find("--vcpus"), std::string::npos);
  EXPECT_NE(o.out.find("--mem"), std::string::npos);
  EXPECT_NE(o.out.find("--kernel"), std::string::npos);
  EXPECT_NE(o.out.find("--initrd"), std::string::npos);
  EXPECT_NE(o.out.find("--append"), std::string::npos);
}

}  // namespace
