// Checkpoint/restore of a machine on several nodes through the `ssi`
// binary (docs/checkpoint.md): the ckpt kernel (40 rounds of lock-xadd on
// one shared counter, a console line after each) on 2 node processes is
// checkpointed at its round 2 line, which stops the run; the checkpoint is
// then continued on 1 node and on 2 nodes, and a 2-node restore is
// checkpointed again and continued on 2; a one-node checkpoint is continued
// on 2 nodes. Every continuation must end with the exact total and must not
// start over. And `ssi checkpoint ADDR --dir D --continue` saves a running
// 2-node machine that then goes on to its exact total, as does D restored.
// Skips on a host without a usable /dev/kvm.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <string>
#include <thread>

#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace {

using ssi::testing::ProcessOutcome;

const ssi::vcpu::KvmHost& kvm_host() {
  static const ssi::vcpu::KvmHost host = ssi::vcpu::probe_kvm_host();
  return host;
}

constexpr std::uint64_t kRounds = 40, kPerRound = 50000, kVcpus = 2;

ProcessOutcome ssi_run(std::vector<std::string> args) {
  args.insert(args.begin(), "run");
  return ssi::testing::run_process(SSI_BINARY, args, {}, std::chrono::seconds(400));
}

const std::string& total_line() {
  static const std::string t = std::to_string(kRounds * kPerRound * kVcpus);
  static const std::string line = "ckpt: total=" + t + " expected=" + t;
  return line;
}

class CheckpointNodesKvm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_host().usable) GTEST_SKIP() << kvm_host().reason;
    char tmpl[] = "/tmp/ssi-ckpt-nodes-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  // Stopped by its checkpoint: exit 0, the saved line, a manifest, no total.
  static void expect_checkpointed(const ProcessOutcome& o, const std::string& dir, const std::string& round) {
    ASSERT_EQ(o.signal, 0) << o.err;
    ASSERT_EQ(o.exit_code, 0) << o.out << o.err;
    EXPECT_NE(o.err.find("ssi: checkpoint saved to " + dir + ": {"), std::string::npos) << o.err;
    EXPECT_NE(o.out.find(round), std::string::npos) << o.out;
    EXPECT_EQ(o.out.find("ckpt: total="), std::string::npos) << "finished before its checkpoint:\n" << o.out;
    struct stat st{};
    EXPECT_EQ(::stat((dir + "/manifest").c_str(), &st), 0);
  }
  // Continued from a checkpoint taken at round `from` or later: exact total,
  // and no round before it printed again.
  static void expect_finished(const ProcessOutcome& o, unsigned from) {
    ASSERT_EQ(o.signal, 0) << o.err;
    EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
    EXPECT_NE(o.out.find("ckpt: round 40 of 40"), std::string::npos) << o.out;
    EXPECT_EQ(o.out.find("ckpt: round " + std::to_string(from - 1) + " of"), std::string::npos)
        << "restarted:\n" << o.out;
    EXPECT_NE(o.out.find(total_line()), std::string::npos) << o.out;
  }
  std::string dir_;
};

TEST_F(CheckpointNodesKvm, TwoNodeCheckpointContinuesOnOneAndTwoNodes) {
  const std::string a = dir_ + "/a", b = dir_ + "/b";
  auto first = ssi_run({"--nodes", "2", "--vcpus", "2", "-m", "64M", "--kernel", SSI_CKPT_KERNEL,
                        "--checkpoint-dir", a, "--checkpoint-on", "ckpt: round 2 "});
  expect_checkpointed(first, a, "ckpt: round 2 of 40");
  EXPECT_NE(first.err.find("\"nodes\": 2"), std::string::npos) << first.err;

  auto on_one = ssi_run({"--restore", a});  // 2 -> 1
  EXPECT_NE(on_one.err.find("ssi: restored from " + a), std::string::npos) << on_one.err;
  expect_finished(on_one, 3);

  // 2 -> 2, checkpointed again at round 5 of the restored run, then 2 -> 2.
  auto on_two = ssi_run({"--restore", a, "--nodes", "2", "--checkpoint-dir", b, "--checkpoint-on",
                         "ckpt: round 5 "});
  EXPECT_NE(on_two.err.find("ssi: restoring from " + a + " on 2 nodes"), std::string::npos) << on_two.err;
  expect_checkpointed(on_two, b, "ckpt: round 5 of 40");
  EXPECT_EQ(on_two.out.find("ckpt: round 2 of"), std::string::npos) << "restarted:\n" << on_two.out;
  auto last = ssi_run({"--restore", b, "--nodes", "2"});
  expect_finished(last, 6);
}

TEST_F(CheckpointNodesKvm, OneNodeCheckpointContinuesOnTwoNodes) {
  const std::string a = dir_ + "/a";
  auto first = ssi_run({"--vcpus", "2", "-m", "64M", "--kernel", SSI_CKPT_KERNEL, "--checkpoint-dir", a,
                        "--checkpoint-on", "ckpt: round 2 "});
  expect_checkpointed(first, a, "ckpt: round 2 of 40");
  auto on_two = ssi_run({"--restore", a, "--nodes", "2"});  // 1 -> 2
  expect_finished(on_two, 3);
}

TEST_F(CheckpointNodesKvm, CommandSavesARunningMachineThatContinues) {
  using namespace std::chrono_literals;
  const std::string d = dir_ + "/d";
  // TCP on loopback: the KVM test VM's /tmp is a 9p share without sockets.
  const std::string addr = "127.0.0.1:" + std::to_string(20000 + ::getpid() % 20000);
  auto run = std::async(std::launch::async, [&] {
    return ssi_run({"--nodes", "2", "--vcpus", "2", "-m", "64M", "--metrics", addr, "--kernel", SSI_CKPT_KERNEL});
  });
  // Until the endpoint answers (bounded); the machine runs on after the save.
  ProcessOutcome c;
  for (int i = 0; i < 200 && run.wait_for(0s) != std::future_status::ready; ++i) {
    c = ssi::testing::run_process(SSI_BINARY, {"checkpoint", addr, "--dir", d, "--continue", "--json"}, {}, 700s);
    if (c.exit_code == 0) break;
    std::this_thread::sleep_for(200ms);
  }
  auto o = run.get();
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("\"continued\":true"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("\"nodes\":2"), std::string::npos) << c.out;
  expect_finished(o, 1);
  auto restored = ssi_run({"--restore", d, "--nodes", "2"});
  ASSERT_EQ(restored.signal, 0) << restored.err;
  EXPECT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  EXPECT_NE(restored.out.find(total_line()), std::string::npos) << restored.out;
  // A wrong request is one line and exit 2 (no machine there any more).
  auto none = ssi::testing::run_process(SSI_BINARY, {"checkpoint", addr, "--dir", d}, {}, 60s);
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_EQ(none.err.find('\n'), none.err.size() - 1) << none.err;
}

}  // namespace
