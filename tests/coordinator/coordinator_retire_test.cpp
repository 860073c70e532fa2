// Retiring a node, as the coordinator orders it (docs/mobility.md,
// "Retiring a node"), with forked nodes whose runtime only counts the
// calls: 2 nodes + 1 standby; the orders to retire node 0, an unknown node,
// node 1 (its vCPU moves to the standby, which pre-copies; every node
// pauses; node 1 hands over; the others learn it left; they resume; node 1
// stops and exits 0) and then node 2 (no standby left). The machine ends
// normally without node 1.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <optional>

#include "machine_fixture.hpp"

namespace ssi::coord {
namespace {
using namespace testing;

class RetireRuntime final : public NodeRuntime {
 public:
  Result<void> configure(const MachineConfig&) override { return ok(); }
  void run_phase(std::uint32_t phase, Done done) override {
    std::thread([this, phase, done] {
      std::this_thread::sleep_for(phase == 0 ? 200ms : 5000ms);
      PhaseResult r;
      r.message = "ok";
      r.stats = {{"emigrated", emigrated_.load()}, {"immigrated", immigrated_.load()},
                 {"paused", paused_.load()},       {"resumed", resumed_.load()},
                 {"precopied", precopied_.load()}, {"handed", handed_.load()},
                 {"told", told_.load()}};
      done(std::move(r));
    }).detach();
  }
  void stop(const std::string&, bool) override {}
  Result<std::vector<std::uint8_t>> emigrate(VcpuId) override {
    ++emigrated_;
    return std::vector<std::uint8_t>{1, 2, 3};
  }
  Result<void> immigrate(VcpuId, std::span<const std::uint8_t>) override {
    ++immigrated_;
    return ok();
  }
  Result<void> checkpoint_pause(std::chrono::milliseconds) override {
    ++paused_;
    return ok();
  }
  void checkpoint_resume(bool stop) override { resumed_ += stop ? 100 : 1; }
  Result<void> retire_precopy(NodeId, bool) override {
    ++precopied_;
    return ok();
  }
  Result<void> retire_hand_over(NodeId to) override {
    if (to != NodeId{2}) return make_error(Errc::kInvalidArgument, "not to the standby");
    ++handed_;
    return ok();
  }
  Result<CheckpointProgress> retire_status() override {
    return CheckpointProgress{true, handed_ ? "\"entry_pages\":3" : "\"precopy_pages\":5"};
  }
  void node_retired(NodeId, NodeId) override { ++told_; }

 private:
  std::atomic<std::uint64_t> emigrated_{0}, immigrated_{0}, paused_{0}, resumed_{0}, precopied_{0},
      handed_{0}, told_{0};
};

Child spawn_retire_node(std::uint16_t port, std::uint32_t id) {
  pid_t pid = fork();
  if (pid == 0) {
    close(g_listen_fd);
    RetireRuntime rt;
    NodeOptions o;
    o.coordinator = "127.0.0.1:" + std::to_string(port);
    o.info = NodeInfo{NodeId{id}, "localhost", "test-1", "loop:" + std::to_string(id),
                      static_cast<std::uint32_t>(getpid()), {}};
    NodeExit e = run_node(o, rt);
    _exit(e.exit_code);
  }
  return Child{pid};
}

std::uint64_t stat(const Outcome& o, std::uint32_t node, const std::string& name) {
  for (const auto& n : o.nodes)
    if (n.info.id == NodeId{node})
      for (const auto& [k, v] : n.last.stats)
        if (k == name) return v;
  return ~0ull;
}

TEST(CoordinatorRetire, RefusesNode0AnUnknownNodeAndNoStandbyAndRetiresANodeToTheStandby) {
  std::vector<std::optional<Result<RetireResult>>> answers(4);
  std::vector<std::uint32_t> retired;
  std::size_t next = 0;
  const std::uint32_t order[] = {0, 7, 1, 2};
  auto run = run_machine(
      3, 2,
      [](std::uint16_t port) {
        return std::vector<Child>{spawn_retire_node(port, 0), spawn_retire_node(port, 1),
                                  spawn_retire_node(port, 2)};
      },
      {},
      [&](CoordinatorOptions& o) {
        o.config.vcpus = 2;  // vCPU 0 on node 0, vCPU 1 on node 1; node 2 standby
        o.config.standby = 1;
        o.next_retire = [&]() -> std::optional<RetireOrder> {
          if (next >= 4 || (next > 0 && !answers[next - 1])) return std::nullopt;
          const std::size_t i = next++;
          return RetireOrder{order[i], std::nullopt, true, [&answers, i](Result<RetireResult> r) { answers[i] = std::move(r); }};
        };
        o.on_retired = [&](std::uint32_t id) { retired.push_back(id); };
      });
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  for (auto& a : answers) ASSERT_TRUE(a.has_value()) << "an order was never answered";
  ASSERT_FALSE(answers[0]->ok());
  EXPECT_NE(answers[0]->error().message.find("node 0 holds the devices"), std::string::npos);
  ASSERT_FALSE(answers[1]->ok());
  EXPECT_NE(answers[1]->error().message.find("no node 7"), std::string::npos) << answers[1]->error().message;
  ASSERT_TRUE(answers[2]->ok()) << answers[2]->error().message;
  EXPECT_EQ(answers[2]->value().from, 1u);
  EXPECT_EQ(answers[2]->value().to, 2u);
  EXPECT_EQ(answers[2]->value().vcpus_moved, 1u);
  EXPECT_EQ(answers[2]->value().precopy, "\"precopy_pages\":5");
  EXPECT_EQ(answers[2]->value().handover, "\"entry_pages\":3");
  ASSERT_FALSE(answers[3]->ok());
  EXPECT_NE(answers[3]->error().message.find("no standby node left"), std::string::npos) << answers[3]->error().message;
  EXPECT_EQ(retired, std::vector<std::uint32_t>{1});
  EXPECT_EQ(stat(run.outcome, 2, "immigrated"), 1u);
  EXPECT_EQ(stat(run.outcome, 2, "precopied"), 1u);
  for (std::uint32_t n : {0u, 2u}) {
    EXPECT_EQ(stat(run.outcome, n, "paused"), 1u) << "node " << n;
    EXPECT_EQ(stat(run.outcome, n, "resumed"), 1u) << "node " << n;
    EXPECT_EQ(stat(run.outcome, n, "told"), 1u) << "node " << n;
  }
  EXPECT_EQ(run.child_exits, (std::vector<int>{0, 0, 0}));
}

}  // namespace
}  // namespace ssi::coord
