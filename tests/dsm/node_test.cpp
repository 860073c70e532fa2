// Node agents over the loopback transport, host threads touching regions.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "dsm/local_cluster.hpp"
#include "dsm/messages.hpp"

namespace ssi::dsm {
namespace {

using testing::HangWatchdog;
using testing::LocalCluster;
using testing::LocalClusterOptions;

std::atomic_ref<std::uint64_t> word(Node& n, std::uint64_t offset) {
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(n.base() + offset));
}

std::unique_ptr<LocalCluster> make_cluster(std::uint32_t nodes, std::uint64_t pages) {
  LocalClusterOptions o;
  o.nodes = nodes;
  o.bytes = pages * kPageSize;
  auto c = LocalCluster::create(o);
  EXPECT_TRUE(c.ok()) << c.error().to_string();
  return c.ok() ? std::move(*c) : nullptr;
}

TEST(DsmNode, FirstTouchReadIsZeroFilledWithoutPageTransfer) {
  auto c = make_cluster(3, 6);  // node 2 homes pages 4-5
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "first touch");
  EXPECT_EQ(word(c->node(0), 4 * kPageSize + 8).load(), 0u);
  EXPECT_EQ(c->node(0).stats().read_faults.load(), 1u);
  EXPECT_EQ(c->node(0).stats().zero_fills.load(), 1u);
  EXPECT_EQ(c->node(0).stats().bytes_received.load(), 0u);
  EXPECT_EQ(c->node(2).stats().bytes_sent.load(), 0u);
}

TEST(DsmNode, WritesBecomeVisibleToOtherNodesAndInvalidateTheirCopies) {
  auto c = make_cluster(3, 6);
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "visibility");
  const std::uint64_t x = 4 * kPageSize;  // homed on node 2
  word(c->node(0), x).store(42);
  EXPECT_EQ(word(c->node(1), x).load(), 42u);
  EXPECT_EQ(word(c->node(2), x).load(), 42u);
  word(c->node(0), x).store(43);  // upgrade: invalidates nodes 1 and 2
  EXPECT_EQ(word(c->node(1), x).load(), 43u);
  EXPECT_EQ(word(c->node(2), x).load(), 43u);
  EXPECT_EQ(c->node(2).stats().invalidations_sent.load(), 2u);
  EXPECT_EQ(c->node(1).stats().invalidations_received.load(), 1u);
  EXPECT_EQ(c->node(0).stats().upgrade_faults.load(), 1u);
  EXPECT_EQ(c->node(1).stats().bytes_received.load(), 2 * kPageSize);
  EXPECT_EQ(c->node(0).stats().bad_messages.load() + c->node(1).stats().bad_messages.load() +
                c->node(2).stats().bad_messages.load(),
            0u);
}

TEST(DsmNode, ConcurrentFaultsOnOnePageSendOneRequest) {
  auto c = make_cluster(2, 2);
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "coalesce");
  word(c->node(0), kPageSize).store(7);  // page 1 homed on node 1, now M at node 0
  std::atomic<int> go{0};
  std::vector<std::thread> ts;
  std::atomic<int> good{0};
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      go.fetch_add(1);
      while (go.load() < 4) {
      }
      good += word(c->node(1), kPageSize + 64).load() == 0 && word(c->node(1), kPageSize).load() == 7;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(good.load(), 4);
  EXPECT_EQ(c->node(1).stats().read_faults.load(), 1u);
}

TEST(DsmNode, PagesHomedOnTheFaultingNodeUseTheSameProtocol) {
  auto c = make_cluster(2, 2);
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "local home");
  word(c->node(0), 0).store(5);  // page 0 homed on node 0 itself
  EXPECT_EQ(word(c->node(1), 0).load(), 5u);
  word(c->node(1), 0).fetch_add(1);
  EXPECT_EQ(word(c->node(0), 0).load(), 6u);
  EXPECT_EQ(c->node(0).stats().write_faults.load(), 1u);
  EXPECT_EQ(c->node(0).stats().fetches_sent.load(), 2u);  // from itself, then from node 1
}

rdma::Frame forged(rdma::FrameType type, std::uint32_t src, std::uint64_t page,
                   std::uint64_t version, std::uint64_t arg0 = 0, std::size_t payload = 0) {
  rdma::Frame f = make_msg(type, PageNo{page}, version, arg0);
  f.header.src = src;
  if (payload) f.payload = rdma::Payload::allocate(payload);
  f.header.payload_len = static_cast<std::uint32_t>(payload);
  return f;
}

TEST(DsmNode, FaultsAreCountedByMessagePathWithTheirDelays) {
  auto c = make_cluster(3, 6);  // node 1 homes pages 2-3
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "paths");
  const std::uint64_t x = 2 * kPageSize;
  word(c->node(2), x).store(7);  // zero grant from the home: 2 delays
  EXPECT_EQ(word(c->node(0), x).load(), 7u);  // node 2 owns it: forwarded, 3 delays
  const auto& s0 = c->node(0).stats();
  EXPECT_EQ(s0.path_faults[kPathReadForwarded].load(), 1u);
  EXPECT_EQ(s0.path_delays[kPathReadForwarded].load(), 3u);
  EXPECT_EQ(c->node(2).stats().path_delays[kPathWriteHome].load(), 2u);
  // The home writes: nodes 0 and 2 hold S and ack node 1 directly (home ->
  // sharer -> home: 2 delays, the grant to itself none).
  word(c->node(1), x).store(8);
  const auto& s1 = c->node(1).stats();
  EXPECT_EQ(s1.path_faults[kPathWriteSharers].load(), 1u);
  EXPECT_EQ(s1.sharer_acks.load(), 2u);
  EXPECT_EQ(s1.path_delays[kPathWriteSharers].load(), 2u);
  EXPECT_EQ(word(c->node(2), x).load(), 8u);  // node 1 owns it now: forwarded
  EXPECT_EQ(c->node(2).stats().path_faults[kPathReadForwarded].load(), 1u);
  EXPECT_EQ(c->node(2).stats().path_delays[kPathReadForwarded].load(), 2u);  // home = owner
  EXPECT_EQ(s0.bad_messages.load() + s1.bad_messages.load() + c->node(2).stats().bad_messages.load(),
            0u);
}

// Two nodes take turns on a counter, each reading it (waiting for its turn)
// and then writing it: a read miss then an upgrade per turn, until the home
// finds the page migratory and grants the read writable.
TEST(DsmNode, PageWrittenInTurnsBecomesMigratory) {
  LocalClusterOptions o;
  o.nodes = 2;
  o.bytes = 2 * kPageSize;  // node 0 homes page 0
  o.configure = [](NodeConfig& cfg) {
    cfg.hot.migratory = true;
    cfg.hot.hold = std::chrono::microseconds(2000);
  };
  auto made = LocalCluster::create(o);
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  auto c = std::move(*made);
  HangWatchdog dog(std::chrono::seconds(60), "migratory");
  constexpr std::uint64_t kTurns = 200;
  std::atomic<bool> stuck{false};
  auto player = [&](std::uint32_t n) {
    auto w = word(c->node(n), 0);
    for (std::uint64_t turn = 0; turn < kTurns && !stuck; ++turn) {
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      std::uint64_t v = w.load();
      while (v % 2 != n) {
        if (std::chrono::steady_clock::now() > until) {
          stuck = true;
          return;
        }
        std::this_thread::yield();
        v = w.load();
      }
      w.store(v + 1);
    }
  };
  std::thread other(player, 1u);
  player(0);
  other.join();
  ASSERT_FALSE(stuck);
  EXPECT_EQ(word(c->node(0), 0).load(), 2 * kTurns);
  const auto& s0 = c->node(0).stats();
  const auto& s1 = c->node(1).stats();
  std::printf("node 0: %s\nnode 1: %s\n", s0.summary().c_str(), s1.summary().c_str());
  EXPECT_GT(s0.migratory_grants.load(), 0u);
  // Every migratory grant saved an upgrade.
  EXPECT_LT(s0.upgrade_faults.load() + s1.upgrade_faults.load(), 2 * kTurns);
  EXPECT_EQ(s0.bad_messages.load() + s1.bad_messages.load(), 0u);
  EXPECT_EQ(s0.local_errors.load() + s1.local_errors.load(), 0u);
}

TEST(DsmNode, BadInputIsCountedAndChangesNothing) {
  auto c = make_cluster(3, 6);  // node 2 homes pages 4-5
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "bad input");
  const std::uint64_t x = 4 * kPageSize;
  word(c->node(0), x).store(11);
  ASSERT_EQ(word(c->node(1), x).load(), 11u);  // node 1 holds page 4 in S
  PageView before;
  DirView dir_before;
  ASSERT_TRUE(c->run_on(1, [&] { before = c->node(1).page_view(PageNo{4}); }).ok());
  // The read was forwarded by node 0: the home's directory is settled once
  // node 0's FetchAck (and node 1's GrantAck) are in, which may be after
  // node 1's read returned.
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(c->run_on(2, [&] { dir_before = c->node(2).dir_view(PageNo{4}); }).ok());
    if (!dir_before.busy) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_FALSE(dir_before.busy);
  ASSERT_EQ(before.state, PageState::kS);
  struct Case {
    const char* what;
    std::size_t to;
    rdma::Frame frame;
  };
  std::vector<Case> cases;
  cases.push_back({"page out of range", 1, forged(kInv, 2, 1000, 99)});
  cases.push_back({"stale Inv", 1, forged(kInv, 2, 4, before.version)});
  cases.push_back({"Inv from a node that is not home", 1, forged(kInv, 0, 4, 99)});
  cases.push_back({"Grant with no request", 1, forged(kGrant, 2, 4, 99, 0, kPageSize)});
  cases.push_back({"payload of the wrong size", 1, forged(kGrant, 2, 4, 99, 0, 100)});
  cases.push_back({"unknown node", 1, forged(kReadReq, 9, 4, 0)});
  cases.push_back({"not a DSM frame", 1, forged(0x0201, 2, 4, 0)});
  cases.push_back({"InvAck with no write in flight", 2, forged(kInvAck, 1, 4, dir_before.version + 1)});
  cases.push_back({"GrantAck nobody expects", 2, forged(kGrantAck, 1, 4, 50)});
  cases.push_back({"request for a page homed elsewhere", 2, forged(kReadReq, 1, 0, 0)});
  cases.push_back({"Fetch of a page not held in M", 1, forged(kFetch, 2, 4, 99)});
  std::uint64_t expected[3] = {0, 0, 0};
  for (auto& k : cases) {
    SCOPED_TRACE(k.what);
    ++expected[k.to];
    auto frame = std::make_shared<rdma::Frame>(std::move(k.frame));
    ASSERT_TRUE(c->run_on(k.to, [&, frame] { c->node(k.to).deliver(std::move(*frame)); }).ok());
    EXPECT_EQ(c->node(k.to).stats().bad_messages.load(), expected[k.to]);
  }
  PageView after;
  DirView dir_after;
  ASSERT_TRUE(c->run_on(1, [&] { after = c->node(1).page_view(PageNo{4}); }).ok());
  ASSERT_TRUE(c->run_on(2, [&] { dir_after = c->node(2).dir_view(PageNo{4}); }).ok());
  EXPECT_EQ(after.state, before.state);
  EXPECT_EQ(after.version, before.version);
  EXPECT_EQ(dir_after.sharers, dir_before.sharers);
  EXPECT_EQ(dir_after.version, dir_before.version);
  // The protocol still works afterwards.
  word(c->node(0), x).store(12);
  EXPECT_EQ(word(c->node(1), x).load(), 12u);
  EXPECT_EQ(c->node(0).stats().bad_messages.load(), 0u);
}

TEST(DsmNode, FrameFromANodeOutsideTheClusterIsRejected) {
  auto c = make_cluster(2, 2);
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(20), "stranger");
  std::unique_ptr<rdma::LoopbackTransport> stranger;
  Result<void> sent;
  ASSERT_TRUE(c->run_on(0, [&] {
    auto t = c->network().create(NodeId{7}, c->reactor(0));
    if (!t.ok()) {
      sent = std::move(t).error();
      return;
    }
    stranger = std::move(*t);
    sent = stranger->connect(NodeId{1}, c->transport(1).local_address());
    if (sent.ok()) sent = stranger->send(NodeId{1}, forged(kReadReq, 7, 1, 0));
  }).ok());
  ASSERT_TRUE(sent.ok()) << sent.error().to_string();
  for (int i = 0; i < 2000 && c->node(1).stats().bad_messages.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(c->node(1).stats().bad_messages.load(), 1u);
  ASSERT_TRUE(c->run_on(0, [&] { stranger->shutdown(); }).ok());
  word(c->node(0), kPageSize).store(3);
  EXPECT_EQ(word(c->node(1), kPageSize).load(), 3u);
}

}  // namespace
}  // namespace ssi::dsm
