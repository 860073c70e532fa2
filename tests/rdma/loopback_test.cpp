// Loopback fault injection: seeded, deterministic, and each fault visible.
#include "rdma/loopback.hpp"

#include <gtest/gtest.h>

#include <boost/fiber/operations.hpp>
#include <random>

#include "rdma/fiber_test_util.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::run_bounded;

constexpr FrameType kSeq = 0xf001;

std::uint64_t test_seed() {
  const char* env = std::getenv("SSI_TEST_SEED");
  std::uint64_t seed = env ? std::strtoull(env, nullptr, 0) : std::random_device{}();
  std::cout << "[ seed     ] SSI_TEST_SEED=" << seed << "\n";
  return seed;
}

using Nodes = std::vector<std::unique_ptr<LoopbackTransport>>;

// Runs `body` in a fiber with loopback nodes 0..n-1 on a fresh reactor.
void with_nodes(std::uint64_t seed, LoopbackFaults faults, int n,
                const std::function<void(LoopbackNetwork&, Nodes&)>& body) {
  auto reactor = Reactor::create().value();
  LoopbackNetwork net(seed, faults);
  run_bounded(*reactor, [&] {
    Nodes nodes;
    for (int i = 0; i < n; ++i) nodes.push_back(net.create(NodeId(i), *reactor).value());
    body(net, nodes);
    for (auto& t : nodes) {  // the handlers point into body's frame
      t->on_receive({});
      t->on_peer_down({});
    }
  }, 20s, fmt::format("SSI_TEST_SEED={}", seed));
}

// Sends `n` numbered frames 1 -> 0 (and 2 -> 0 if `two_senders`) through a
// network with `faults`; returns (src, seq) in arrival order.
std::vector<std::pair<std::uint32_t, std::uint64_t>> transfer(std::uint64_t seed, LoopbackFaults faults,
                                                              int n, bool two_senders,
                                                              LoopbackStats* stats = nullptr) {
  std::vector<std::pair<std::uint32_t, std::uint64_t>> got;
  with_nodes(seed, faults, 3, [&](LoopbackNetwork& net, Nodes& nodes) {
    nodes[0]->on_receive([&](Frame&& f) { got.emplace_back(f.header.src, f.header.arg0); });
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(nodes[1]->send(NodeId{0}, Frame::make(kSeq, i)).ok());
      if (two_senders) {
        ASSERT_TRUE(nodes[2]->send(NodeId{0}, Frame::make(kSeq, i)).ok());
      }
    }
    // Quiet for 50 ms = everything in flight has landed (delays are < 5 ms).
    std::size_t last = ~std::size_t{0};
    while (last != got.size()) {
      last = got.size();
      boost::this_fiber::sleep_for(50ms);
    }
    if (stats) *stats = net.stats();
  });
  return got;
}

TEST(LoopbackFaults, SameSeedSameDrops) {
  const auto seed = test_seed();
  LoopbackFaults f;
  f.drop = 0.3;
  LoopbackStats stats;
  auto first = transfer(seed, f, 1000, false, &stats);
  auto second = transfer(seed, f, 1000, false);
  EXPECT_EQ(first, second);
  EXPECT_GT(stats.dropped, 200u);
  EXPECT_LT(stats.dropped, 400u);
  EXPECT_EQ(first.size(), 1000 - stats.dropped);
  auto other = transfer(seed + 1, f, 1000, false);
  EXPECT_NE(first, other) << "a different seed should drop different frames";
}

TEST(LoopbackFaults, DuplicatesArriveTwice) {
  const auto seed = test_seed();
  LoopbackFaults f;
  f.duplicate = 0.2;
  LoopbackStats stats;
  auto got = transfer(seed, f, 500, false, &stats);
  EXPECT_GT(stats.duplicated, 50u);
  EXPECT_EQ(got.size(), 500 + stats.duplicated);
}

TEST(LoopbackFaults, DelayKeepsOrderWithinPairButReordersPairs) {
  const auto seed = test_seed();
  LoopbackFaults f;
  f.max_delay = 3ms;
  auto got = transfer(seed, f, 300, true);
  ASSERT_EQ(got.size(), 600u);
  std::uint64_t next[3] = {0, 0, 0};
  int switches = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    auto [src, seq] = got[i];
    ASSERT_EQ(seq, next[src]++) << "pair order broken at " << i;
    if (i > 0 && got[i - 1].first != src) ++switches;
  }
  // Sent strictly alternating (599 switches); random delays clump them.
  EXPECT_LT(switches, 590);
}

TEST(LoopbackFaults, ReorderWithinPairWhenAsked) {
  const auto seed = test_seed();
  LoopbackFaults f;
  f.max_delay = 1ms;
  f.reorder_within_pair = 0.2;
  LoopbackStats stats;
  auto got = transfer(seed, f, 500, false, &stats);
  ASSERT_EQ(got.size(), 500u);
  int inversions = 0;
  for (std::size_t i = 1; i < got.size(); ++i) inversions += got[i].second < got[i - 1].second;
  EXPECT_GT(stats.reordered, 0u);
  EXPECT_GT(inversions, 0);
}

TEST(LoopbackFaults, PartitionLosesFramesUntilHealed) {
  with_nodes(test_seed(), {}, 2, [&](LoopbackNetwork& net, Nodes& nodes) {
    auto& a = *nodes[0];
    a.on_receive([&](Frame&& f) { EXPECT_TRUE(a.reply(f.header, Frame::make(kSeq)).ok()); });
    net.partition(NodeId{0}, NodeId{1});
    auto r = nodes[1]->rpc(NodeId{0}, Frame::make(kSeq), 50ms);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::kTimeout);
    net.heal(NodeId{0}, NodeId{1});
    EXPECT_TRUE(nodes[1]->rpc(NodeId{0}, Frame::make(kSeq), 1s).ok());
  });
}

TEST(LoopbackFaults, KilledNodeIsSeenDownByOthers) {
  with_nodes(test_seed(), {}, 2, [&](LoopbackNetwork& net, Nodes& nodes) {
    std::vector<NodeId> down;
    nodes[1]->on_peer_down([&](NodeId p, const Error& e) {
      EXPECT_EQ(e.code, Errc::kDisconnected);
      down.push_back(p);
    });
    net.kill(NodeId{0});
    EXPECT_TRUE(eventually([&] { return down.size() == 1; }, 2s));
    EXPECT_EQ(down.at(0), NodeId{0});
    auto s = nodes[1]->send(NodeId{0}, Frame::make(kSeq));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, Errc::kDisconnected);
  });
}

TEST(Loopback, NodesOnDifferentReactorThreadsTalk) {
  auto ra = Reactor::create().value();
  auto rb = Reactor::create().value();
  LoopbackNetwork net(1);
  auto a = net.create(NodeId{0}, *ra).value();
  auto b = net.create(NodeId{1}, *rb).value();
  a->on_receive([&](Frame&& f) {
    EXPECT_TRUE(ra->on_reactor_thread());
    EXPECT_TRUE(a->reply(f.header, Frame::make(kSeq, f.header.arg0 * 2)).ok());
  });
  std::thread ta([&] { ra->run(); });
  int good = 0;
  run_bounded(*rb, [&] {
    for (int i = 0; i < 200; ++i) {
      auto r = b->rpc(NodeId{0}, Frame::make(kSeq, i), 2s);
      good += r.ok() && r->header.arg0 == std::uint64_t(2 * i);
    }
    b->shutdown();
  }, 20s);
  a->shutdown();
  ra->stop();
  ta.join();
  EXPECT_EQ(good, 200);
}

}  // namespace
}  // namespace ssi::rdma
