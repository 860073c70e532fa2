// A node's share handed to a standby node (Node::hand_over): host threads
// on every node count in their own slot of random pages, a standby node
// reads the retiring node's pages meanwhile (pre-copy), then at a barrier
// (every thread stopped) node 1 hands its share to node 3, the others home
// its pages there, and the count goes on with node 3 in node 1's place.
// Every slot of every page must hold its exact count afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include "dsm/local_cluster.hpp"
#include "dsm/messages.hpp"

namespace ssi::dsm {
namespace {

using testing::HangWatchdog;
using testing::LocalCluster;
using testing::LocalClusterOptions;

constexpr std::uint32_t kHomeNodes = 3, kNodes = 4, kPagesPerHome = 16;
constexpr std::uint32_t kPages = kHomeNodes * kPagesPerHome;
constexpr std::uint32_t kThreadsPerNode = 2, kWriters = kHomeNodes * kThreadsPerNode;

std::atomic_ref<std::uint64_t> slot(Node& n, std::uint32_t page, std::uint32_t s) {
  return std::atomic_ref<std::uint64_t>(
      *reinterpret_cast<std::uint64_t*>(n.base() + page * kPageSize + s * 8));
}

struct Counts {
  std::uint64_t c[kWriters][kPages] = {};
};

// Writer w counts in slot w of random pages, on node `node_of(w)`.
void count_round(LocalCluster& c, Counts& counts, std::uint64_t seed, int ops,
                 const std::function<std::uint32_t(std::uint32_t)>& node_of) {
  std::vector<std::thread> threads;
  for (std::uint32_t w = 0; w < kWriters; ++w)
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed * 7919 + w);
      Node& n = c.node(node_of(w));
      for (int i = 0; i < ops; ++i) {
        const auto page = static_cast<std::uint32_t>(rng() % kPages);
        if (rng() % 3 == 0) {
          (void)slot(n, static_cast<std::uint32_t>(rng() % kPages), kWriters).load();  // a reader
          continue;
        }
        auto s = slot(n, page, w);
        s.store(s.load() + 1);
        ++counts.c[w][page];
      }
    });
  for (auto& t : threads) t.join();
}

std::unique_ptr<LocalCluster> make_cluster(std::uint64_t seed) {
  LocalClusterOptions o;
  o.nodes = kNodes;  // node 3 homes nothing: a standby
  o.bytes = kPages * kPageSize;
  o.seed = seed;
  o.faults.min_delay = std::chrono::microseconds(0);
  o.faults.max_delay = std::chrono::microseconds(100);
  for (std::uint32_t n = 0; n < kHomeNodes; ++n)
    o.homes.push_back({PageNo{n * kPagesPerHome}, PageNo{(n + 1) * kPagesPerHome}, NodeId{n}});
  auto c = LocalCluster::create(o);
  EXPECT_TRUE(c.ok()) << c.error().to_string();
  return c.ok() ? std::move(*c) : nullptr;
}

Result<HandoverStats> hand_over(LocalCluster& c, std::uint32_t from, std::uint32_t to) {
  Result<HandoverStats> r = make_error(Errc::kTimeout, "not run");
  auto ran = c.run_on(from, [&] { r = c.node(from).hand_over(NodeId{to}); }, std::chrono::seconds(60));
  if (!ran.ok()) return std::move(ran).error();
  return r;
}

TEST(DsmHandover, RetiredNodesShareGoesToTheStandbyAndEveryCountStaysExact) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    auto c = make_cluster(seed);
    ASSERT_TRUE(c);
    HangWatchdog dog(std::chrono::seconds(120), "handover seed " + std::to_string(seed));
    Counts counts;
    // Before: writers on nodes 0-2; node 3 pre-copies node 1's pages
    // (reads them as a sharer) while they run.
    std::thread precopy([&] {
      for (int round = 0; round < 3; ++round)
        for (std::uint32_t p = kPagesPerHome; p < 2 * kPagesPerHome; ++p)
          (void)slot(c->node(3), p, 0).load();
    });
    count_round(*c, counts, seed, 400, [](std::uint32_t w) { return w / kThreadsPerNode; });
    precopy.join();
    // The last pre-copy round after the writers stopped: these pages are
    // held in S by node 3 and need not travel again.
    for (std::uint32_t p = kPagesPerHome; p < kPagesPerHome + 8; ++p)
      (void)slot(c->node(3), p, 0).load();

    // Node 1 owns (M) a page homed on node 0 and one of its own that node 3
    // did not pre-copy: one writeback and one entry with data at least.
    constexpr std::uint32_t kMark = kWriters + 1;  // a slot no writer uses
    slot(c->node(1), 0, kMark).store(1000 + seed);
    slot(c->node(1), 2 * kPagesPerHome - 1, kMark).store(2000 + seed);
    auto st = hand_over(*c, 1, 3);
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    EXPECT_EQ(st->pages_rehomed, kPagesPerHome);
    EXPECT_GE(st->kept, 8u);
    EXPECT_LE(st->entries, kPagesPerHome);
    EXPECT_EQ(st->bytes, (st->entry_pages + st->written_back) * kPageSize);
    EXPECT_GE(st->entry_pages, 1u);
    EXPECT_GE(st->written_back, 1u);
    std::printf("seed %llu: %llu entries (%llu with data, %llu kept), %llu written back, %llu left\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(st->entries),
                static_cast<unsigned long long>(st->entry_pages), static_cast<unsigned long long>(st->kept),
                static_cast<unsigned long long>(st->written_back), static_cast<unsigned long long>(st->left));
    for (std::uint32_t n : {0u, 2u, 3u}) {
      NodeId home;
      ASSERT_TRUE(c->run_on(n, [&] { home = c->node(n).homes().home_of(PageNo{kPagesPerHome + 3}); }).ok());
      EXPECT_EQ(home, NodeId{3}) << "node " << n;
    }
    // Node 1's connection closing is not a failure any more.
    ASSERT_TRUE(c->run_on(0, [&] { c->node(0).peer_failed(NodeId{1}, make_error(Errc::kDisconnected, "closed")); }).ok());
    EXPECT_FALSE(c->node(0).failure().has_value());
    EXPECT_TRUE(hand_over(*c, 1, 3).error().message.find("cannot hand over") != std::string::npos);

    // After: node 3 counts in node 1's place.
    count_round(*c, counts, seed + 100, 400, [](std::uint32_t w) {
      const std::uint32_t n = w / kThreadsPerNode;
      return n == 1 ? 3u : n;
    });
    for (std::uint32_t reader : {0u, 3u}) {
      EXPECT_EQ(slot(c->node(reader), 0, kMark).load(), 1000 + seed);
      EXPECT_EQ(slot(c->node(reader), 2 * kPagesPerHome - 1, kMark).load(), 2000 + seed);
    }
    for (std::uint32_t reader : {0u, 3u})
      for (std::uint32_t p = 0; p < kPages; ++p)
        for (std::uint32_t w = 0; w < kWriters; ++w)
          ASSERT_EQ(slot(c->node(reader), p, w).load(), counts.c[w][p])
              << "page " << p << " writer " << w << " read on node " << reader;
    for (std::uint32_t n = 0; n < kNodes; ++n)
      EXPECT_EQ(c->node(n).stats().bad_messages.load(), 0u) << "node " << n;
  }
}

TEST(DsmHandover, RefusesItselfAnUnknownNodeAndARetiredOne) {
  auto c = make_cluster(1);
  ASSERT_TRUE(c);
  HangWatchdog dog(std::chrono::seconds(60), "handover refusals");
  slot(c->node(1), 0, 0).store(5);  // something to hand over
  EXPECT_EQ(hand_over(*c, 1, 1).error().code, Errc::kInvalidArgument);
  EXPECT_EQ(hand_over(*c, 1, 9).error().code, Errc::kInvalidArgument);
  ASSERT_TRUE(hand_over(*c, 2, 3).ok());
  EXPECT_EQ(hand_over(*c, 1, 2).error().code, Errc::kInvalidArgument) << "node 2 retired";
  // Node 3 now homes node 2's pages and node 1 still hands over to it.
  slot(c->node(0), 2 * kPagesPerHome, 0).store(7);
  auto st = hand_over(*c, 1, 3);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(st->written_back, 1u) << "node 1's M copy of page 0 (homed on node 0)";
  EXPECT_EQ(slot(c->node(3), 0, 0).load(), 5u);
  EXPECT_EQ(slot(c->node(0), 2 * kPagesPerHome, 0).load(), 7u);
  EXPECT_EQ(slot(c->node(3), 2 * kPagesPerHome, 0).load(), 7u);
}

}  // namespace
}  // namespace ssi::dsm
