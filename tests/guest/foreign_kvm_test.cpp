// Foreign kernels under `ssi run` itself (KVM): mbtest through ssi's
// multiboot loader, fw_cfg and isa-debug-exit, on one node and across two
// (its module and command line reach node 0, its SRAT/SLIT name 2 nodes). Skipped, with the reason, on a host
// without a usable /dev/kvm; scripts/test runs them in the KVM test VM too.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace {


class ForeignKvm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto h = ssi::vcpu::probe_kvm_host(); !h.usable) GTEST_SKIP() << h.reason;
    char tmpl[] = "/tmp/ssi-foreign-kvm-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_F(ForeignKvm, MultibootKernelPassesItsChecksUnderSsi) {
  const std::string module = dir_ + "/module.bin";
  std::ofstream(module) << "SSIMOD-payload";
  for (const char* vcpus : {"1", "2"}) {
    auto o = ssi::testing::run_process(
        SSI_BINARY,
        {"run", "--vcpus", vcpus, "--mem", "64M", "--kernel", SSI_MBTEST, "--initrd", module,
         "--append", std::string("cpus=") + vcpus + " mem=64 nodes=1 module=SSIMOD"},
        {}, std::chrono::seconds(120));
    EXPECT_EQ(o.exit_code, 1) << "isa-debug-exit 0 -> (0 << 1) | 1\n" << o.out << o.err;
    EXPECT_NE(o.out.find("mbtest: PASS"), std::string::npos) << o.out << o.err;
  }
}

TEST_F(ForeignKvm, MultibootKernelPassesItsChecksAcrossTwoNodes) {
  const std::string module = dir_ + "/module.bin";
  std::ofstream(module) << "SSIMOD-payload";
  auto o = ssi::testing::run_process(
      SSI_BINARY,
      {"run", "--nodes", "2", "--vcpus", "2", "--mem", "64M", "--transport", "tcp", "--kernel",
       SSI_MBTEST, "--initrd", module, "--append", "cpus=2 mem=64 nodes=2 module=SSIMOD"},
      {}, std::chrono::seconds(240));
  ASSERT_FALSE(o.timed_out) << o.out << o.err;
  EXPECT_EQ(o.exit_code, 1) << "isa-debug-exit 0 -> (0 << 1) | 1\n" << o.out << o.err;
  EXPECT_NE(o.out.find("mbtest: PASS"), std::string::npos) << o.out << o.err;
}

}  // namespace
