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

#include "machine_fixture.hpp"

namespace ssi::coord {
namespace {
using namespace testing;

using namespace std::chrono_literals;

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

// A guest's own exit code (debug-exit port) ends the machine normally: the
// code is passed on, no later phase runs, and no node counts as failed.
TEST(Coordinator, GuestExitCodeEndsTheMachineWithoutAFailure) {
  auto run = run_machine(2, 3, [](std::uint16_t port) {
    return std::vector<Child>{spawn_node(port, 0, "test-1", 5ms),
                              spawn_node(port, 1, "test-1", 5ms, /*fail_phase=*/1, 0ms, {}, /*guest_exit=*/true)};
  });
  EXPECT_EQ(run.outcome.exit_code, 7);
  EXPECT_TRUE(run.outcome.guest_exit);
  EXPECT_EQ(run.outcome.message, "machine finished: the guest exited with code 7");
  EXPECT_EQ(run.child_exits, (std::vector<int>{0, 0}));
  for (const auto& n : run.outcome.nodes) {  // phase 2 never ran
    for (const auto& [name, value] : n.last.stats) {
      if (name == "phases_done") {
        EXPECT_EQ(value, 2u) << "node " << n.info.id;
      }
    }
  }
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
