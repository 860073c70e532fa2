// Random read/exchange schedules from host threads on every node, over the
// loopback transport with seeded delays (frames of different node pairs
// overtake each other). Every write is an atomic exchange, so the value it
// replaced names its predecessor: per location the writes must form one
// chain from 0 (no lost or forked update), every read must return a value
// of that chain, and each thread's observations of a location must never go
// backwards along it (coherence; with SWMR this is what SC allows).
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <unordered_map>

#include "dsm/local_cluster.hpp"

namespace ssi::dsm {
namespace {

using testing::HangWatchdog;
using testing::LocalCluster;
using testing::LocalClusterOptions;

struct Obs {
  std::uint32_t loc;
  std::uint64_t seen;     // value read, or value replaced by the exchange
  std::uint64_t wrote;    // 0 for a read
};

struct Schedule {
  std::uint32_t nodes, threads_per_node, pages, slots_per_page, ops;
  int think_us = 0;  // sleep between operations, so pages move more often
};

void run_schedule(std::uint64_t seed, const Schedule& s) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (SSI_TEST_SEED=" << seed << ")");
  LocalClusterOptions o;
  o.nodes = s.nodes;
  o.bytes = s.pages * kPageSize;
  o.seed = seed;
  o.faults.min_delay = std::chrono::microseconds(0);
  o.faults.max_delay = std::chrono::microseconds(150);
  auto cluster = LocalCluster::create(o);
  ASSERT_TRUE(cluster.ok()) << cluster.error().to_string();
  LocalCluster& c = **cluster;
  const std::uint32_t locs = s.pages * s.slots_per_page;
  auto addr = [&](std::uint32_t node, std::uint32_t loc) {
    std::uint64_t off = (loc / s.slots_per_page) * kPageSize +
                        (loc % s.slots_per_page) * (kPageSize / s.slots_per_page);
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(c.node(node).base() + off));
  };
  const std::uint32_t nthreads = s.nodes * s.threads_per_node;
  std::vector<std::vector<Obs>> log(nthreads);
  {
    HangWatchdog dog(std::chrono::seconds(60), "coherence seed " + std::to_string(seed));
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < nthreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(seed * 1000003 + t);
        std::uint32_t node = t % s.nodes;
        for (std::uint64_t i = 1; i <= s.ops; ++i) {
          std::uint32_t loc = rng() % locs;
          if (s.think_us) std::this_thread::sleep_for(std::chrono::microseconds(rng() % s.think_us));
          else if (rng() % 4 == 0) std::this_thread::yield();  // let other nodes take pages away
          if (rng() % 10 < 3) {
            std::uint64_t v = (std::uint64_t{t + 1} << 32) | i;
            log[t].push_back({loc, addr(node, loc).exchange(v), v});
          } else {
            log[t].push_back({loc, addr(node, loc).load(), 0});
          }
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  // Rebuild each location's write chain from the exchanges.
  std::vector<std::unordered_map<std::uint64_t, std::uint64_t>> next(locs);
  std::vector<std::size_t> writes(locs, 0);
  for (const auto& l : log)
    for (const auto& ob : l)
      if (ob.wrote) {
        ++writes[ob.loc];
        ASSERT_TRUE(next[ob.loc].emplace(ob.seen, ob.wrote).second)
            << "two writes replaced value " << std::hex << ob.seen << " at location " << std::dec
            << ob.loc << " (lost update)";
      }
  std::vector<std::unordered_map<std::uint64_t, std::size_t>> pos(locs);
  for (std::uint32_t l = 0; l < locs; ++l) {
    std::uint64_t v = 0;
    pos[l][0] = 0;
    for (std::size_t k = 1; next[l].count(v); ++k) {
      v = next[l][v];
      pos[l][v] = k;
    }
    ASSERT_EQ(pos[l].size(), writes[l] + 1) << "writes at location " << l << " do not form one chain";
    EXPECT_EQ(addr(l % s.nodes, l).load(), v) << "final value of location " << l;
  }
  for (std::uint32_t t = 0; t < nthreads; ++t) {
    std::vector<std::size_t> last(locs, 0);
    for (const auto& ob : log[t]) {
      auto it = pos[ob.loc].find(ob.seen);
      ASSERT_NE(it, pos[ob.loc].end()) << "thread " << t << " read a value never written: " << std::hex
                                       << ob.seen;
      std::size_t p = ob.wrote ? pos[ob.loc][ob.wrote] : it->second;
      if (ob.wrote) {
        ASSERT_EQ(p, it->second + 1);
      }
      ASSERT_GE(p, last[ob.loc]) << "thread " << t << " went back in time at location " << ob.loc;
      last[ob.loc] = p;
    }
  }
  for (std::uint32_t n = 0; n < s.nodes; ++n) {
    std::printf("seed %llu node %u: %s\n", static_cast<unsigned long long>(seed), n,
                c.node(n).stats().summary().c_str());
    EXPECT_EQ(c.node(n).stats().bad_messages.load(), 0u) << "node " << n;
    EXPECT_EQ(c.node(n).stats().local_errors.load(), 0u) << "node " << n;
  }
}

std::uint64_t base_seed() {
  const char* env = std::getenv("SSI_TEST_SEED");
  return env ? std::strtoull(env, nullptr, 0) : std::random_device{}();
}

TEST(DsmCoherence, RandomSchedulesOnThreeNodesWithDelays) {
  std::uint64_t seed = base_seed();
  for (int i = 0; i < 3 && !HasFailure(); ++i) run_schedule(seed + i, {3, 2, 4, 4, 300});
}

TEST(DsmCoherence, RandomSchedulesOnFourNodesManyPages) {
  std::uint64_t seed = base_seed();
  for (int i = 0; i < 2 && !HasFailure(); ++i) run_schedule(seed + i, {4, 2, 16, 2, 300});
}

TEST(DsmCoherence, OneHotPageAllNodes) {
  run_schedule(base_seed(), {4, 2, 1, 8, 200, 200});
}

}  // namespace
}  // namespace ssi::dsm
