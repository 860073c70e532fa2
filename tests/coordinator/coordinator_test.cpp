// Coordinator + node processes: each node is a forked child running
// run_node() with a scripted runtime; the coordinator runs in the parent.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "coordinator/coordinator.hpp"
#include "coordinator/node_client.hpp"

namespace ssi::coord {
namespace {

using namespace std::chrono_literals;

// Finishes each phase after `delay`; phase `fail_phase` reports exit code 7.
class ScriptedRuntime final : public NodeRuntime {
 public:
  ScriptedRuntime(std::chrono::milliseconds delay, int fail_phase)
      : delay_(delay), fail_phase_(fail_phase) {}
  Result<void> configure(const MachineConfig& c) override {
    if (c.peers.size() != c.nodes) return make_error(Errc::kInvalidArgument, "peer list size");
    return ok();
  }
  void run_phase(std::uint32_t phase, Done done) override {
    std::thread([=, this] {
      std::this_thread::sleep_for(delay_);
      PhaseResult r;
      r.exit_code = static_cast<int>(phase) == fail_phase_ ? 7 : 0;
      r.message = r.exit_code ? "scripted failure" : "ok";
      r.stats = {{"phases_done", phase + 1}, {"pid", static_cast<std::uint64_t>(getpid())}};
      done(std::move(r));
    }).detach();
  }
  void stop(const std::string&, bool) override {}

 private:
  std::chrono::milliseconds delay_;
  int fail_phase_;
};

struct Child {
  pid_t pid = -1;
};

int g_listen_fd = -1;  // the coordinator's socket; children must not keep it

Child spawn_node(std::uint16_t port, std::uint32_t id, std::string version,
                 std::chrono::milliseconds delay, int fail_phase = -1,
                 std::chrono::milliseconds join_after = 0ms) {
  pid_t pid = fork();
  if (pid == 0) {
    close(g_listen_fd);
    std::this_thread::sleep_for(join_after);
    ScriptedRuntime rt(delay, fail_phase);
    NodeOptions o;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.info = NodeInfo{NodeId{id}, "localhost", version, "loop:" + std::to_string(id),
                      static_cast<std::uint32_t>(getpid()), {}};
    o.timing.failure_timeout = 3000ms;
    NodeExit e = run_node(o, rt);
    std::fprintf(stderr, "node %u exit %d: %s\n", id, e.exit_code, e.message.c_str());
    _exit(e.exit_code);
  }
  return Child{pid};
}

int wait_exit(pid_t pid) {
  // Bounded: 10 s.
  for (int i = 0; i < 1000; ++i) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(10ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

struct Run {
  Outcome outcome;
  std::vector<int> child_exits;
  std::chrono::milliseconds elapsed{};
};

// Starts a coordinator for `nodes` nodes; `spawn(port)` forks the children.
Run run_machine(std::uint32_t nodes, std::uint32_t phases,
                const std::function<std::vector<Child>(std::uint16_t)>& spawn,
                const std::function<void(std::vector<Child>&)>& meddle = {}) {
  CoordinatorOptions o;
  o.config.nodes = nodes;
  o.config.phases = phases;
  o.version = "test-1";
  o.timing.failure_timeout = 1500ms;
  o.timing.join_timeout = 10s;
  o.timing.phase_timeout = 20s;
  // Fork the nodes before the coordinator's event loop exists: a child
  // must not inherit a live kj loop.
  auto sock = listen_socket("127.0.0.1", 0);
  EXPECT_TRUE(sock.ok());
  g_listen_fd = o.listen_fd = sock->first;
  std::vector<Child> children = spawn(sock->second);
  if (meddle) meddle(children);
  o.on_event = [](const std::string& line) { std::fprintf(stderr, "coordinator: %s\n", line.c_str()); };
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_coordinator(o);
  Run run;
  run.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  if (r.ok()) run.outcome = *r;
  for (auto& c : children) run.child_exits.push_back(wait_exit(c.pid));
  return run;
}

TEST(Coordinator, NodesJoinRunEveryPhaseAndStopCleanly) {
  auto run = run_machine(3, 3, [](std::uint16_t port) {
    return std::vector<Child>{spawn_node(port, 0, "test-1", 10ms), spawn_node(port, 1, "test-1", 30ms),
                              spawn_node(port, 2, "test-1", 5ms)};
  });
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  ASSERT_EQ(run.outcome.nodes.size(), 3u);
  for (auto& n : run.outcome.nodes) {
    ASSERT_FALSE(n.last.stats.empty());
    EXPECT_EQ(n.last.stats[0].second, 3u) << "node " << n.info.id << " did not finish phase 2";
  }
  EXPECT_EQ(run.child_exits, (std::vector<int>{0, 0, 0}));
  std::string table = format_stats_table(run.outcome.nodes);
  EXPECT_NE(table.find("phases_done"), std::string::npos) << table;
  std::fprintf(stderr, "%s", table.c_str());
}

TEST(Coordinator, VersionMismatchIsRefusedWithAClearMessage) {
  auto run = run_machine(1, 1, [&](std::uint16_t port) {
    return std::vector<Child>{spawn_node(port, 0, "other-9", 1ms),
                              spawn_node(port, 0, "test-1", 1ms, -1, /*join_after=*/300ms)};
  });
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  EXPECT_EQ(run.child_exits, (std::vector<int>{2, 0}));  // the mismatched node was refused
}

TEST(Coordinator, FailedPhaseStopsEveryNodeWithItsExitCode) {
  auto run = run_machine(2, 3, [](std::uint16_t port) {
    return std::vector<Child>{spawn_node(port, 0, "test-1", 5ms),
                              spawn_node(port, 1, "test-1", 5ms, /*fail_phase=*/1)};
  });
  EXPECT_EQ(run.outcome.exit_code, 7);
  EXPECT_NE(run.outcome.message.find("node 1 failed phase 1"), std::string::npos)
      << run.outcome.message;
  EXPECT_EQ(run.child_exits, (std::vector<int>{3, 3}));
}

TEST(Coordinator, KilledNodeIsDetectedAndEveryoneStops) {
  auto run = run_machine(
      3, 1,
      [](std::uint16_t port) {
        return std::vector<Child>{spawn_node(port, 0, "test-1", 30s),
                                  spawn_node(port, 1, "test-1", 30s),
                                  spawn_node(port, 2, "test-1", 30s)};
      },
      [](std::vector<Child>& kids) {
        std::thread([pid = kids[1].pid] {
          std::this_thread::sleep_for(1s);
          kill(pid, SIGKILL);
        }).detach();
      });
  EXPECT_EQ(run.outcome.exit_code, 3);
  EXPECT_NE(run.outcome.message.find("node 1"), std::string::npos) << run.outcome.message;
  EXPECT_NE(run.outcome.message.find("died"), std::string::npos) << run.outcome.message;
  EXPECT_LT(run.elapsed, 7s) << "detection must take < 5 s after the kill at 1 s";
  EXPECT_EQ(run.child_exits[0], 3);
  EXPECT_EQ(run.child_exits[1], 128 + SIGKILL);
  EXPECT_EQ(run.child_exits[2], 3);
}

TEST(Coordinator, NodeNoticesADeadCoordinator) {
  // No coordinator at all on this port: the node fails fast with exit 3.
  ScriptedRuntime rt(1ms, -1);
  NodeOptions o;
  o.coordinator = "127.0.0.1:1";
  o.info.version = "test-1";
  NodeExit e = run_node(o, rt);
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_NE(e.message.find("lost the coordinator"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace ssi::coord
