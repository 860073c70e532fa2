// Hostile and broken peers against a running `ssi demo` (2 node processes
// on loopback, host-level DSM workload, no KVM needed): each attack ends
// with every round trip of the ping workload done, or the run stopping with the right exit code and
// a clear line within a bound.
#include <gtest/gtest.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <regex>
#include <thread>

#include "demo_run.hpp"
#include "raw_peer.hpp"
#include "rdma/shm_channel.hpp"

namespace ssi::adversarial {
namespace {

// Round trips between the 2 nodes for ~5 s here: the attacks land
// mid-run, and every one of them must succeed.
const std::vector<std::string> kLongDemo = {"demo", "--nodes", "2", "--workload", "ping", "--rounds", "100000"};
const std::regex kAllRoundTrips(R"(rpc_round_trips\s+100000\s+100000\n)");
const std::regex kNoErrors(R"(rpc_errors\s+0\s+0\n)");

std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}

// Every TCP port the coordinator and the nodes listen on.
std::vector<std::uint16_t> every_tcp_port(const DemoRun& run, const std::vector<pid_t>& nodes) {
  auto ports = tcp_listen_ports(run.pid());
  for (pid_t n : nodes)
    for (auto p : tcp_listen_ports(n)) ports.push_back(p);
  return ports;
}

// Both nodes' pids, once they have run for a moment and node 1 got `sig`;
// empty if they did not start.
std::vector<pid_t> signal_node_1_mid_run(DemoRun& run, int sig) {
  auto nodes = run.wait_for_nodes(2);
  if (nodes.size() != 2) return {};
  std::this_thread::sleep_for(500ms);  // joined and running
  if (kill(nodes[1], sig) != 0) return {};
  return nodes;
}

void expect_intact(DemoRun& run) {
  int code = run.wait(120s);
  EXPECT_EQ(code, 0) << run.err();
  std::string stats = run.err();  // the stats table is on stderr, stdout has the results
  EXPECT_TRUE(std::regex_search(stats, kAllRoundTrips)) << run.out() << stats;
  EXPECT_TRUE(std::regex_search(stats, kNoErrors)) << stats;
}

TEST(Adversarial, ForgedHellosAndMachineFramesAreRefusedOnEveryNodeSocket) {
  DemoRun run(kLongDemo);
  auto nodes = run.wait_for_nodes(2);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  int refused = 0, attempts = 0;
  for (pid_t n : nodes)
    for (auto port : tcp_listen_ports(n))
      for (std::uint32_t claim : {0u, 1u, 7u}) {
        UniqueFd fd = dial_tcp(port);
        ASSERT_TRUE(fd);
        rdma::FrameHeader h;
        h.type = rdma::kFrameHello;
        h.src = claim;
        h.dst = claim == 0 ? 1 : 0;
        std::byte nonce[kNonceSize]{};
        send_frame(fd.get(), h, nonce);
        std::byte proof[kProofSize]{};
        h.type = rdma::kFrameHelloProof;
        send_frame(fd.get(), h, proof);
        h.type = 0x0203;  // kMachineExit: would stop the node's vCPUs
        h.arg0 = 77;
        send_frame(fd.get(), h);
        h.type = 0x0201;  // kIoRequest: a write to the guest's exit port
        send_frame(fd.get(), h);
        ++attempts;
        refused += closed_within(fd.get(), 7s);
      }
  EXPECT_GT(attempts, 0);
  EXPECT_EQ(refused, attempts) << "a forged stream stayed open";
  expect_intact(run);
}

TEST(Adversarial, ForgedShmHelloWithAnotherSecretIsRefused) {
  DemoRun run(with(kLongDemo, {"--transport", "shm"}));
  auto nodes = run.wait_for_nodes(2);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  int refused = 0, attempts = 0;
  for (std::size_t id = 0; id < nodes.size(); ++id)
    for (auto& name : shm_listen_names(nodes[id])) {
      auto ch = rdma::ShmChannel::connect(name, NodeId{id == 0 ? 1u : 0u}, NodeId{static_cast<std::uint32_t>(id)},
                                          {}, MachineSecret::generate());
      ASSERT_TRUE(ch.ok()) << ch.error().to_string();
      ++attempts;
      pollfd p{ch->socket_fd(), POLLIN | POLLRDHUP, 0};
      if (::poll(&p, 1, 7000) == 1) refused += !ch->on_socket_event().ok();
    }
  EXPECT_GT(attempts, 0);
  EXPECT_EQ(refused, attempts) << "a forged shm connection was acknowledged";
  expect_intact(run);
}

TEST(Adversarial, IdleAndHalfOpenConnectionsOnEveryTcpSocketAreClosed) {
  DemoRun run(kLongDemo);
  auto nodes = run.wait_for_nodes(2);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  std::vector<UniqueFd> idle, half_open;
  for (auto port : every_tcp_port(run, nodes)) {
    idle.push_back(dial_tcp(port));
    half_open.push_back(dial_tcp(port));
    ::shutdown(half_open.back().get(), SHUT_WR);
  }
  ASSERT_GE(idle.size(), 3u) << "coordinator + 2 nodes";
  int closed = 0;
  for (auto* set : {&idle, &half_open})
    for (auto& fd : *set) closed += closed_within(fd.get(), 14s);  // limits: nodes 5 s, coordinator 10 s
  EXPECT_EQ(closed, static_cast<int>(idle.size() + half_open.size()));
  expect_intact(run);
}

// Two clients that connect to every shm socket and never say hello made an
// 11 s run take 167 s when each accept waited for its greeting.
TEST(Adversarial, IdleShmClientsCostTheRunNothing) {
  DemoRun baseline(with(kLongDemo, {"--transport", "shm"}));
  expect_intact(baseline);
  DemoRun run(with(kLongDemo, {"--transport", "shm"}));
  auto nodes = run.wait_for_nodes(2);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  std::atomic<bool> done{false};
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c)
    clients.emplace_back([&, nodes] {
      for (int i = 0; i < 2000 && !done; ++i)  // bounded
        for (pid_t n : nodes)
          for (auto& name : shm_listen_names(n)) {
            UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            std::string path = "ssi-shm-" + name;
            std::memcpy(a.sun_path + 1, path.data(), path.size());
            (void)::connect(s.get(), reinterpret_cast<sockaddr*>(&a),
                            static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + path.size()));
            std::this_thread::sleep_for(20ms);
          }
    });
  expect_intact(run);
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_LT(run.ran_for(), 2 * baseline.ran_for() + 5s);
}

TEST(Adversarial, ConnectFloodsOnEverySocketLeaveTheResultIntact) {
  DemoRun run(kLongDemo);
  auto nodes = run.wait_for_nodes(2);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  auto ports = every_tcp_port(run, nodes);
  std::vector<std::thread> flood;
  for (auto port : ports)
    flood.emplace_back([port] {
      for (int i = 0; i < 300; ++i) UniqueFd fd = dial_tcp(port);  // connect, close
    });
  for (auto& t : flood) t.join();
  expect_intact(run);
}

TEST(Adversarial, FrozenCoordinatorMakesEveryNodeExit3WithinTheDeadline) {
  DemoRun run(kLongDemo);
  auto nodes = run.wait_for_nodes(2);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  std::this_thread::sleep_for(500ms);  // joined and running
  ASSERT_EQ(kill(run.pid(), SIGSTOP), 0);
  auto frozen = Clock::now();
  // The nodes' parent is frozen, so they end as zombies: that is the exit.
  auto all_exited = [&] {
    for (pid_t n : nodes)
      if (char s = process_state(n); s != 'Z' && s != 0) return false;
    return true;
  };
  while (!all_exited() && Clock::now() - frozen < 10s) std::this_thread::sleep_for(10ms);
  auto took = Clock::now() - frozen;
  std::vector<int> codes;
  for (pid_t n : nodes) {
    int status = 0;
    codes.push_back(waitpid(n, &status, WNOHANG) == n && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  kill(run.pid(), SIGKILL);
  kill(run.pid(), SIGCONT);
  EXPECT_TRUE(all_exited());
  EXPECT_LT(took, 6s) << "heartbeat floor 4 s";
  std::fprintf(stderr, "nodes exited %lld ms after the coordinator froze\n",
               static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  (void)run.wait(5s);
  std::string err = run.err();
  EXPECT_NE(err.find("node 0: lost the coordinator: no heartbeat"), std::string::npos) << err;
  EXPECT_NE(err.find("node 1: lost the coordinator: no heartbeat"), std::string::npos) << err;
}

TEST(Adversarial, FrozenNodeIsNamedAndTheRunExits3) {
  DemoRun run(kLongDemo);
  auto nodes = signal_node_1_mid_run(run, SIGSTOP);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  int code = run.wait(20s);
  EXPECT_EQ(code, 3) << run.err();
  std::string err = run.err();
  EXPECT_NE(err.find("node 1"), std::string::npos) << err;
  EXPECT_NE(err.find("no heartbeat"), std::string::npos) << err;
}

TEST(Adversarial, BrieflyPausedNodeSurvives) {
  DemoRun run(kLongDemo);
  auto nodes = signal_node_1_mid_run(run, SIGSTOP);
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  std::this_thread::sleep_for(3s);  // below the 4 s heartbeat floor
  ASSERT_EQ(kill(nodes[1], SIGCONT), 0);
  expect_intact(run);
}

TEST(Adversarial, KilledNodeEndsEveryProcessWithin2Seconds) {
  DemoRun run(kLongDemo);
  auto nodes = signal_node_1_mid_run(run, SIGKILL);
  auto killed = Clock::now();
  ASSERT_EQ(nodes.size(), 2u) << run.err();
  int code = run.wait(10s);
  auto took = Clock::now() - killed;
  EXPECT_EQ(code, 3) << run.err();
  EXPECT_LT(took, 2s);
  std::fprintf(stderr, "run ended %lld ms after the kill\n",
               static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  EXPECT_EQ(process_state(nodes[0]), 0) << "node 0 outlived the run";
  std::string err = run.err();
  EXPECT_NE(err.find("node 1"), std::string::npos) << err;
  EXPECT_NE(err.find("died"), std::string::npos) << err;
  // The launcher SIGKILLs survivors only 5 s after the coordinator ended:
  // ending within 2 s means node 0 exited by itself.
}

TEST(Adversarial, NodeCountAboveTheLimitIsRefusedBeforeAnyProcessStarts) {
  DemoRun run({"demo", "--nodes", "64"});
  EXPECT_EQ(run.wait(5s), 2);
  std::string err = run.err();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("--nodes"), std::string::npos) << err;
}

}  // namespace
}  // namespace ssi::adversarial
