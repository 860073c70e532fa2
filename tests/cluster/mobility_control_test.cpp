// vCPU mobility's control side without nodes (docs/mobility.md): the
// placement policy's decision rule (hysteresis), what it orders from a
// sample, and the move queue between the endpoint and the coordinator.
#include <gtest/gtest.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "cluster/move_queue.hpp"
#include "cluster/placement_policy.hpp"

namespace ssi::cluster {
namespace {

TEST(PlacementPolicyTest, MovesOnlyToAClearMajorityOfEnoughRequests) {
  using P = PlacementPolicy;
  EXPECT_EQ(P::choose({900, 100}, 1), 0u);            // node 0 serves 90%
  EXPECT_EQ(P::choose({900, 100}, 0), std::nullopt);  // already there
  EXPECT_EQ(P::choose({30, 2}, 1), std::nullopt);     // too few to judge
  EXPECT_EQ(P::choose({550, 450}, 1), std::nullopt);  // no clear majority: stays
  EXPECT_EQ(P::choose({500, 300, 200}, 1), std::nullopt);  // 50% < 60%
  EXPECT_EQ(P::choose({0, 100, 700}, 0), 2u);
}

coord::NodeReport node(std::uint32_t id, coord::Counters c) {
  coord::NodeReport r;
  r.info.id = NodeId{id};
  r.last.stats = std::move(c);
  return r;
}

TEST(PlacementPolicyTest, OrdersOneMoveFromTheSampledCountersAndWaitsForIt) {
  MoveQueue q;
  PlacementPolicy p(2, 2, q);
  // vCPU 1 runs on node 1; its requests go to node 0's pages.
  std::vector<coord::NodeReport> s = {
      node(0, {{"vcpu0.run_ns", 1}}),
      node(1, {{"vcpu1.run_ns", 1}, {"vcpu1.dsm_requests_home0", 500}, {"vcpu1.dsm_requests_home1", 10}})};
  p.observe(s);
  auto o = q.next();
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->vcpu, 1u);
  EXPECT_EQ(o->to, 0u);
  EXPECT_FALSE(q.next().has_value());
  // While that move is under way, no other order.
  s[1].last.stats[1].second = 2000;
  p.observe(s);
  EXPECT_FALSE(q.next().has_value());
  o->done(coord::MoveResult{1, 1, 0});
  // Right after a move: the cooldown holds it even with a new majority.
  s[1].last.stats[1].second = 4000;
  p.observe(s);
  EXPECT_FALSE(q.next().has_value());
  EXPECT_EQ(p.moves_made(), 1u);
}

TEST(MoveQueueTest, AMoveNobodyTakesTimesOutAndIsWithdrawn) {
  MoveQueue q;
  auto r = q.move(1, 0, std::chrono::milliseconds(50));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(q.next().has_value());
}

TEST(MoveQueueTest, TheCoordinatorsAnswerReachesTheWaitingCaller) {
  MoveQueue q;
  std::thread coordinator([&] {
    for (int i = 0; i < 200; ++i) {
      if (auto o = q.next()) {
        o->done(coord::MoveResult{o->vcpu, 1, o->to, 123, 456, 9000});
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  auto r = q.move(1, 0, std::chrono::seconds(5));
  coordinator.join();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->pause_us, 123u);
  EXPECT_EQ(answer_move_request(q, nlohmann::ordered_json{{"execute", "move-vcpu"}}).find("error") != std::string::npos, true);
}

}  // namespace
}  // namespace ssi::cluster
