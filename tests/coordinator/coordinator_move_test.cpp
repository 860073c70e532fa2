// A vCPU move the coordinator orders whose target node cannot take the vCPU
// (the failure is injected in the target's runtime): the node it left takes
// it back, the order reports the error, the machine goes on.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <optional>

#include "machine_fixture.hpp"

namespace ssi::coord {
namespace {
using namespace testing;

// Each phase takes 1.5 s; vCPUs "move" as opaque bytes; node `refuse` fails
// every immigrate. Its counters are the phase's stats.
class MoveRuntime final : public NodeRuntime {
 public:
  MoveRuntime(std::uint32_t self, std::uint32_t refuse) : self_(self), refuse_(refuse) {}
  Result<void> configure(const MachineConfig&) override { return ok(); }
  void run_phase(std::uint32_t, Done done) override {
    std::thread([this, done] {
      std::this_thread::sleep_for(1500ms);
      PhaseResult r;
      r.message = "ok";
      r.stats = {{"emigrated", emigrated_.load()}, {"immigrated", immigrated_.load()},
                 {"refused", refused_.load()}, {"placed", placed_.load()}};
      done(std::move(r));
    }).detach();
  }
  void stop(const std::string&, bool) override {}
  Result<std::vector<std::uint8_t>> emigrate(VcpuId) override {
    ++emigrated_;
    return std::vector<std::uint8_t>{1, 2, 3};
  }
  Result<void> immigrate(VcpuId, std::span<const std::uint8_t> state) override {
    if (self_ == refuse_) {
      ++refused_;
      return make_error(Errc::kInternal, "injected failure");
    }
    if (state.size() != 3 || state[2] != 3) return make_error(Errc::kProtocol, "not the state");
    ++immigrated_;
    return ok();
  }
  void placed(VcpuId, NodeId) override { ++placed_; }

 private:
  std::uint32_t self_, refuse_;
  std::atomic<std::uint64_t> emigrated_{0}, immigrated_{0}, refused_{0}, placed_{0};
};

Child spawn_move_node(std::uint16_t port, std::uint32_t id, std::uint32_t refuse) {
  pid_t pid = fork();
  if (pid == 0) {
    close(g_listen_fd);
    MoveRuntime rt(id, refuse);
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

TEST(CoordinatorMove, AFailedImmigrateGivesTheVcpuBackToItsNodeAndTheMachineGoesOn) {
  std::optional<Result<MoveResult>> answer;
  bool ordered = false;
  auto run = run_machine(
      2, 2,  // moves are ordered while phase 1 (the guest's) runs
      [](std::uint16_t port) {
        return std::vector<Child>{spawn_move_node(port, 0, 0), spawn_move_node(port, 1, 0)};
      },
      {},
      [&](CoordinatorOptions& o) {
        o.config.vcpus = 2;  // vCPU 1 on node 1
        o.next_move = [&]() -> std::optional<MoveOrder> {
          if (std::exchange(ordered, true)) return std::nullopt;
          return MoveOrder{1, 0, [&](Result<MoveResult> r) { answer = std::move(r); }};
        };
      });
  EXPECT_EQ(run.outcome.exit_code, 0) << run.outcome.message;
  ASSERT_TRUE(answer.has_value()) << "the order was never answered";
  ASSERT_FALSE(answer->ok());
  EXPECT_NE(answer->error().message.find("injected failure"), std::string::npos)
      << answer->error().message;
  EXPECT_NE(answer->error().message.find("continues on node 1"), std::string::npos)
      << answer->error().message;
  EXPECT_EQ(stat(run.outcome, 1, "emigrated"), 1u);
  EXPECT_EQ(stat(run.outcome, 0, "refused"), 1u);
  EXPECT_EQ(stat(run.outcome, 1, "immigrated"), 1u) << "taken back";
  EXPECT_EQ(stat(run.outcome, 0, "placed") + stat(run.outcome, 1, "placed"), 0u);
  EXPECT_EQ(run.child_exits, (std::vector<int>{0, 0}));
}

}  // namespace
}  // namespace ssi::coord
