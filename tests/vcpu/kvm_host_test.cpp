// probe_kvm_host names the KVM flavour, or why there is none, from the
// device and /sys/module: checked against fake trees (no KVM needed).
#include "vcpu/kvm_host.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace ssi::vcpu {
namespace {

struct KvmHostTest : ::testing::Test {
  void SetUp() override {
    char tmpl[] = "/tmp/ssi-kvm-host-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    ::mkdir((dir + "/module").c_str(), 0755);
  }
  void TearDown() override { std::system(("rm -rf " + dir).c_str()); }
  void module(const char* name) { ::mkdir((dir + "/module/" + name).c_str(), 0755); }
  void device() { std::ofstream(dir + "/kvm") << ""; }
  KvmHost probe() { return probe_kvm_host(dir + "/kvm", dir + "/module"); }
  std::string dir;
};

TEST_F(KvmHostTest, PvmBuiltInWithoutDeviceSaysItDidNotBind) {
  module("kvm");
  module("kvm_pvm");
  auto h = probe();
  EXPECT_FALSE(h.usable);
  EXPECT_NE(h.reason.find("kvm-pvm did not bind"), std::string::npos) << h.reason;
}

TEST_F(KvmHostTest, NoModuleAtAllSaysTheKernelHasNoKvm) {
  auto h = probe();
  EXPECT_FALSE(h.usable);
  EXPECT_NE(h.reason.find("this kernel has no KVM"), std::string::npos) << h.reason;
}

TEST_F(KvmHostTest, UsableDeviceNamesTheVendorModule) {
  device();
  module("kvm");
  module("kvm_amd");
  EXPECT_EQ(probe().describe(), "kvm-amd");
}

TEST_F(KvmHostTest, UsableDeviceWithPvmIsThePvmFlavour) {
  device();
  module("kvm_pvm");
  EXPECT_EQ(probe().flavour, "kvm-pvm");
}

}  // namespace
}  // namespace ssi::vcpu
