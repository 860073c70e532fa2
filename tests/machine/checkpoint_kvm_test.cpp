// Checkpoint/restore of a running guest through the `ssi` binary: the ckpt
// kernel (tests/guest/kernels/ckpt.c, 40 rounds of lock-xadd with a console
// line after each) is checkpointed at its round 2 line, which stops the run;
// `ssi run --restore` then finishes it with the exact total. Checkpoint then
// restore again from the restored machine too (a restored machine is a
// machine like any other). Skips on a host without a usable /dev/kvm.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace {

using ssi::testing::ProcessOutcome;

const ssi::vcpu::KvmHost& kvm_host() {
  static const ssi::vcpu::KvmHost host = ssi::vcpu::probe_kvm_host();
  return host;
}

constexpr std::uint64_t kRounds = 40, kPerRound = 50000;

ProcessOutcome ssi_run(const std::vector<std::string>& args) {
  std::vector<std::string> a = {"run"};
  a.insert(a.end(), args.begin(), args.end());
  return ssi::testing::run_process(SSI_BINARY, a, {}, std::chrono::seconds(240));
}

std::string total_line(unsigned vcpus) {
  auto t = std::to_string(kRounds * kPerRound * vcpus);
  return "ckpt: total=" + t + " expected=" + t;
}

class CheckpointKvm : public ::testing::TestWithParam<unsigned> {
 protected:
  void SetUp() override {
    if (!kvm_host().usable) GTEST_SKIP() << kvm_host().reason;
    char tmpl[] = "/tmp/ssi-ckpt-kvm-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  // The run stopped by its checkpoint: exit 0, a manifest, no total yet.
  void expect_checkpointed(const ProcessOutcome& o, const std::string& dir, const std::string& round) {
    ASSERT_EQ(o.signal, 0) << o.err;
    ASSERT_EQ(o.exit_code, 0) << o.out << o.err;
    EXPECT_NE(o.err.find("ssi: checkpoint saved to " + dir), std::string::npos) << o.err;
    EXPECT_NE(o.out.find(round), std::string::npos) << o.out;
    EXPECT_EQ(o.out.find("ckpt: total="), std::string::npos) << "finished before its checkpoint:\n" << o.out;
    struct stat st{};
    EXPECT_EQ(::stat((dir + "/manifest").c_str(), &st), 0);
  }
  std::string dir_;
};

TEST_P(CheckpointKvm, InterruptedCounterFinishesExactlyAfterRestore) {
  const unsigned vcpus = GetParam();
  const std::string a = dir_ + "/a", b = dir_ + "/b";
  auto first = ssi_run({"--kernel", SSI_CKPT_KERNEL, "--vcpus", std::to_string(vcpus), "-m", "64M",
                        "--checkpoint-dir", a, "--checkpoint-on", "ckpt: round 2 "});
  expect_checkpointed(first, a, "ckpt: round 2 of 40");
  // Restored, and checkpointed again at round 5 of the same run.
  auto second = ssi_run({"--restore", a, "--checkpoint-dir", b, "--checkpoint-on", "ckpt: round 5 "});
  EXPECT_NE(second.err.find("ssi: restored from " + a), std::string::npos) << second.err;
  expect_checkpointed(second, b, "ckpt: round 5 of 40");
  EXPECT_EQ(second.out.find("ckpt: round 1 "), std::string::npos) << "restarted from the start:\n" << second.out;
  auto last = ssi_run({"--restore", b});
  ASSERT_EQ(last.signal, 0);
  EXPECT_EQ(last.exit_code, 0) << last.out << last.err;
  EXPECT_NE(last.out.find("ckpt: round 40 of 40"), std::string::npos) << last.out;
  EXPECT_EQ(last.out.find("ckpt: round 5 "), std::string::npos) << last.out;
  EXPECT_NE(last.out.find(total_line(vcpus)), std::string::npos) << last.out;
  // The first checkpoint is still good: restoring it again gives the same end.
  auto again = ssi_run({"--restore", a});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find(total_line(vcpus)), std::string::npos) << again.out;
}

// Every byte of a filled RAM survives: 240 MiB of patterned pages checked
// by the guest after the restore.
TEST_F(CheckpointKvm, FilledRamSurvivesRestore) {
  const std::string a = dir_ + "/a";
  auto first = ssi_run({"--kernel", SSI_CKPT_FILL_KERNEL, "-m", "256M", "--checkpoint-dir", a,
                        "--checkpoint-on", "ckptfill: round 2 "});
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("ckptfill: filled "), std::string::npos) << first.out;
  EXPECT_EQ(first.out.find("ckptfill: verified"), std::string::npos) << first.out;
  auto restored = ssi_run({"--restore", a});
  EXPECT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  EXPECT_NE(restored.out.find("MiB, 0 bad words"), std::string::npos) << restored.out;
}

INSTANTIATE_TEST_SUITE_P(Vcpus, CheckpointKvm, ::testing::Values(1u, 2u, 4u),
                         [](const auto& info) { return std::to_string(info.param) + "vcpu"; });

}  // namespace
