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
// The same with `ssi coordinator --standby 1` and three `ssi node`
// processes, as nodes on other hosts are started. Skip, with the reason,
// without a usable /dev/kvm (scripts/kvm-vm-tests runs them in the KVM test
// VM).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "ssi/free_port.hpp"
#include "ssi/subprocess.hpp"
#include "vcpu/kvm_host.hpp"

namespace ssi::multinode {
namespace {

using namespace std::chrono_literals;

// vCPU 1 starts on node 1: to 0, back to 1, retire node 1 (vCPU 1 goes
// to node 2), then 0, 2, 0, ... until the guest ends the run (`ended`).
struct Driven {
  int moves = 0, refused = 0;
  bool retired = false;
  std::string retire_reply, last_error;
};

Driven drive_moves_and_retire(const std::string& sock, const std::function<bool()>& ended) {
  constexpr int kMaxAttempts = 200;
  Driven d;
  std::uint32_t to = 0;
  for (int i = 0; i < kMaxAttempts && !ended(); ++i) {
    ssi::testing::ProcessOutcome m;
    if (d.moves == 2 && !d.retired) {
      m = ssi::testing::run_process(SSI_BINARY, {"retire", sock, "--node", "1", "--json"}, {}, 700s);
      if (m.exit_code == 0) {
        d.retired = true;
        d.retire_reply = m.out;
        to = 0;
      }
    } else {
      m = ssi::testing::run_process(SSI_BINARY, {"move", sock, "--vcpu", "1", "--to", std::to_string(to), "--json"},
                                    {}, 60s);
      if (m.exit_code == 0) {
        ++d.moves;
        to = to == 0 ? (d.retired ? 2u : 1u) : 0u;
      }
    }
    if (m.exit_code != 0) {
      ++d.refused;  // before the guest runs (no endpoint, phase 0) or after it ended
      d.last_error = m.err;
    }
    std::this_thread::sleep_for(300ms);
  }
  return d;
}

// What the wander guest printed on node 0's console after the retire.
void expect_exact_guest_after_retire(const std::string& out) {
  EXPECT_NE(out.find("wander: ok"), std::string::npos) << out;
  EXPECT_NE(out.find("nodes_seen_mask=7"), std::string::npos) << out;
  EXPECT_NE(out.find("cpu 1 on node 2"), std::string::npos) << out;
  // Pages homed on node 1, written by vCPU 1 from every node, after the handover.
  EXPECT_NE(out.find("scratch_bad=0"), std::string::npos) << out;
}

TEST(RetireKvm, RetiredNodesVcpuAndMemoryGoToTheStandbyAndTheGuestFinishesExactly) {
  const vcpu::KvmHost host = vcpu::probe_kvm_host();
  if (!host.usable) GTEST_SKIP() << host.reason;
  // TCP on loopback: the KVM test VM's /tmp is a 9p share without sockets.
  const std::string sock = "127.0.0.1:" + std::to_string(ssi::testing::free_loopback_port());
  auto run = std::async(std::launch::async, [&] {
    return ssi::testing::run_process(SSI_BINARY,
                                     {"run", "--nodes", "2", "--standby", "1", "--vcpus", "2", "--mem", "64M",
                                      "--transport", "tcp", "--metrics", sock, "--kernel", SSI_WANDER_KERNEL},
                                     {}, 900s);
  });
  Driven d = drive_moves_and_retire(sock, [&] { return run.wait_for(0s) == std::future_status::ready; });
  auto o = run.get();
  std::printf("{\"test\":\"retire_kvm\",\"machine\":\"2 nodes + 1 standby x 2 vCPUs, tcp, KVM test VM or host\","
              "\"moves\":%d,\"refused\":%d,\"retire\":%s}\n",
              d.moves, d.refused, d.retire_reply.empty() ? "null" : d.retire_reply.substr(0, d.retire_reply.find('\n')).c_str());
  EXPECT_TRUE(d.retired) << d.last_error;
  EXPECT_FALSE(o.timed_out);
  EXPECT_EQ(o.exit_code, 0) << "stdout:\n" << o.out << "\nstderr:\n" << o.err << "\nlast error: " << d.last_error;
  expect_exact_guest_after_retire(o.out);
  EXPECT_NE(d.retire_reply.find("\"from\":1,\"to\":2,\"vcpus_moved\":1"), std::string::npos) << d.retire_reply;
  // Printed by the launcher while the machine runs, never after it.
  EXPECT_NE(o.err.find("node 1 retired: its process exited with code 0"), std::string::npos) << o.err;
  std::printf("%s", o.out.c_str());
}

// Nodes started as on other hosts: `ssi coordinator --nodes 2 --standby 1`
// waits for 3 `ssi node` processes (ids 0-2, node 2 the standby); the
// retire goes through the coordinator's --metrics endpoint. Node 1's process
// must exit 0 while the machine runs, the others and the coordinator at the
// end.
TEST(RetireKvm, CoordinatorForNodesOnOtherHostsRetiresANodeToItsStandby) {
  const vcpu::KvmHost host = vcpu::probe_kvm_host();
  if (!host.usable) GTEST_SKIP() << host.reason;
  // The processes form one machine and share its secret, as the launchers
  // arrange (docs/security.md); the children inherit it.
  ASSERT_EQ(::setenv("SSI_SECRET", std::string(64, 'b').c_str(), 1), 0);
  const std::string port = std::to_string(ssi::testing::free_loopback_port());
  const std::string sock = "127.0.0.1:" + std::to_string(ssi::testing::free_loopback_port());
  auto coordinator = std::async(std::launch::async, [&] {
    return ssi::testing::run_process(SSI_BINARY,
                                     {"coordinator", "--listen", "127.0.0.1:" + port, "--nodes", "2", "--standby", "1",
                                      "--vcpus", "2", "--mem", "64M", "--transport", "tcp", "--metrics", sock,
                                      "--kernel", SSI_WANDER_KERNEL},
                                     {}, 900s);
  });
  std::vector<std::future<ssi::testing::ProcessOutcome>> nodes;
  for (int id = 0; id < 3; ++id)
    nodes.push_back(std::async(std::launch::async, [&, id] {
      return ssi::testing::run_process(SSI_BINARY,
                                       {"node", "--coordinator", "127.0.0.1:" + port, "--id", std::to_string(id),
                                        "--transport", "tcp", "--join-timeout", "60"},
                                       {}, 900s);
    }));
  bool node1_left_early = false;
  Driven d = drive_moves_and_retire(sock, [&] {
    if (nodes[1].wait_for(0s) == std::future_status::ready && coordinator.wait_for(0s) != std::future_status::ready)
      node1_left_early = true;
    return coordinator.wait_for(0s) == std::future_status::ready;
  });
  auto o = coordinator.get();
  std::vector<ssi::testing::ProcessOutcome> n;
  for (auto& f : nodes) n.push_back(f.get());
  std::printf("{\"test\":\"retire_kvm_coordinator\",\"machine\":\"ssi coordinator + 3 ssi node (1 standby) x 2 "
              "vCPUs, tcp\",\"moves\":%d,\"refused\":%d,\"retire\":%s}\n",
              d.moves, d.refused, d.retire_reply.empty() ? "null" : d.retire_reply.substr(0, d.retire_reply.find('\n')).c_str());
  EXPECT_TRUE(d.retired) << d.last_error;
  EXPECT_FALSE(o.timed_out);
  EXPECT_EQ(o.exit_code, 0) << "coordinator stderr:\n" << o.err << "\nlast error: " << d.last_error;
  EXPECT_NE(o.err.find("waiting for 3 nodes"), std::string::npos) << o.err;
  EXPECT_NE(d.retire_reply.find("\"from\":1,\"to\":2,\"vcpus_moved\":1"), std::string::npos) << d.retire_reply;
  for (int id = 0; id < 3; ++id)
    EXPECT_EQ(n[id].exit_code, 0) << "node " << id << " stderr:\n" << n[id].err;
  EXPECT_TRUE(node1_left_early) << "node 1's process ran until the machine ended";
  expect_exact_guest_after_retire(n[0].out + o.out);  // the console: node 0's stdout (or the coordinator's)
}

}  // namespace
}  // namespace ssi::multinode
