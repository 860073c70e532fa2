// Retiring a node on a real KVM (docs/mobility.md, "Retiring a node"): the
// wander kernel runs on 2 node processes plus 1 standby; vCPU 1 is moved
// to node 0 and back to node 1, then node 1 is retired with `ssi retire`
// (its vCPU and its share of the memory go to node 2, the standby, with
// pre-copy), then vCPU 1 is moved between nodes 0 and 2 until the guest has
// seen its 8 node changes. The guest's counter must be exact, its counters
// in 64 pages homed on node 1 too (written after each chunk, from every
// node), it must have seen nodes 0, 1 and 2, no IPI may be lost, the run must end with exit
// code 0, and node 1's process must have exited with code 0 while the
// machine still ran. The retire's times are printed as one JSON line.
// Skips, with the reason, without a usable /dev/kvm (scripts/kvm-vm-tests
// runs it in the KVM test VM).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>

#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace ssi::multinode {
namespace {

using namespace std::chrono_literals;

TEST(RetireKvm, RetiredNodesVcpuAndMemoryGoToTheStandbyAndTheGuestFinishesExactly) {
  const vcpu::KvmHost host = vcpu::probe_kvm_host();
  if (!host.usable) GTEST_SKIP() << host.reason;
  // TCP on loopback: the KVM test VM's /tmp is a 9p share without sockets.
  const std::string sock = "127.0.0.1:" + std::to_string(20000 + (::getpid() + 7) % 20000);
  auto run = std::async(std::launch::async, [&] {
    return ssi::testing::run_process(SSI_BINARY,
                                     {"run", "--nodes", "2", "--standby", "1", "--vcpus", "2", "--mem", "64M",
                                      "--transport", "tcp", "--metrics", sock, "--kernel", SSI_WANDER_KERNEL},
                                     {}, 900s);
  });
  // vCPU 1 starts on node 1: to 0, back to 1, retire node 1 (vCPU 1 goes
  // to node 2), then 0, 2, 0, ... until the guest ends the run.
  constexpr int kMaxAttempts = 200;
  int moves = 0, refused = 0;
  bool retired = false;
  std::string retire_reply, last_error;
  std::uint32_t to = 0;
  for (int i = 0; i < kMaxAttempts && run.wait_for(0s) != std::future_status::ready; ++i) {
    ssi::testing::ProcessOutcome m;
    if (moves == 2 && !retired) {
      m = ssi::testing::run_process(SSI_BINARY, {"retire", sock, "--node", "1", "--json"}, {}, 700s);
      if (m.exit_code == 0) {
        retired = true;
        retire_reply = m.out;
        to = 0;
      }
    } else {
      m = ssi::testing::run_process(SSI_BINARY, {"move", sock, "--vcpu", "1", "--to", std::to_string(to), "--json"},
                                    {}, 60s);
      if (m.exit_code == 0) {
        ++moves;
        to = to == 0 ? (retired ? 2u : 1u) : 0u;
      }
    }
    if (m.exit_code != 0) {
      ++refused;  // before the guest runs (no endpoint, phase 0) or after it ended
      last_error = m.err;
    }
    std::this_thread::sleep_for(300ms);
  }
  auto o = run.get();
  std::printf("{\"test\":\"retire_kvm\",\"machine\":\"2 nodes + 1 standby x 2 vCPUs, tcp, KVM test VM or host\","
              "\"moves\":%d,\"refused\":%d,\"retire\":%s}\n",
              moves, refused, retire_reply.empty() ? "null" : retire_reply.substr(0, retire_reply.find('\n')).c_str());
  EXPECT_TRUE(retired) << last_error;
  EXPECT_FALSE(o.timed_out);
  EXPECT_EQ(o.exit_code, 0) << "stdout:\n" << o.out << "\nstderr:\n" << o.err << "\nlast error: " << last_error;
  EXPECT_NE(o.out.find("wander: ok"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("nodes_seen_mask=7"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("cpu 1 on node 2"), std::string::npos) << o.out;
  // Pages homed on node 1, written by vCPU 1 from every node, after the handover.
  EXPECT_NE(o.out.find("scratch_bad=0"), std::string::npos) << o.out;
  EXPECT_NE(retire_reply.find("\"from\":1,\"to\":2,\"vcpus_moved\":1"), std::string::npos) << retire_reply;
  // Printed by the launcher while the machine runs, never after it.
  EXPECT_NE(o.err.find("node 1 retired: its process exited with code 0"), std::string::npos) << o.err;
  std::printf("%s", o.out.c_str());
}

}  // namespace
}  // namespace ssi::multinode
