// "dsm-demo": host threads of every node hammer one DSM-coherent memory
// region (the same mechanism that backs guest RAM): a shared counter
// incremented with atomic RMW from every node, a hello slot per node and a
// pattern block per node. Phase 1 checks, on every node, the exact count
// and everybody's data: coherence across processes, end to end.
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cluster/workload.hpp"
#include "dsm_host.hpp"

namespace ssi::cluster {
namespace {

constexpr unsigned kThreadsPerNode = 2;
constexpr std::uint64_t kHelloMagic = 0x55aa000000000000ull;
constexpr std::uint64_t kPatternPages = 8;

class DsmDemoWorkload final : public Workload {
 public:
  DsmDemoWorkload(NodeHost& host, const coord::MachineConfig& config)
      : host_(host), dsm_(host), nodes_(config.nodes),
        increments_(config.workload_arg), bytes_(config.mem_bytes) {}  // defaults: with_defaults()

  Result<void> start() {
    std::uint64_t needed = (1 + nodes_ + nodes_ * kPatternPages) * kPageSize;
    if (bytes_ < needed)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("dsm-demo needs at least {} bytes of memory", needed));
    return dsm_.start(nodes_, bytes_);
  }

  coord::PhaseResult run_phase(std::uint32_t phase) override {
    coord::PhaseResult r = phase == 0 ? write_phase() : check_phase();
    r.stats = stats();
    return r;
  }

  void stop() override { stopping_ = true; }
  void fail(const std::string& why) override { dsm_.fail(why); }

 private:
  std::uint64_t* word(std::uint64_t page, std::uint64_t index = 0) const {
    return dsm_.word(page, index);
  }
  std::uint64_t pattern_page(std::uint32_t node, std::uint64_t i) const {
    return 1 + nodes_ + node * kPatternPages + i;
  }
  static std::uint64_t pattern(std::uint32_t node, std::uint64_t i, std::uint64_t w) {
    return (std::uint64_t{node} << 48) ^ (i << 24) ^ w;
  }

  coord::PhaseResult write_phase() {
    std::uint32_t me = host_.self().value();
    auto* counter = reinterpret_cast<std::atomic<std::uint64_t>*>(word(0));
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < kThreadsPerNode; ++t)
      threads.emplace_back([&] {
        for (std::uint64_t i = 0; i < increments_ && !stopping_; ++i) counter->fetch_add(1);
      });
    *word(1 + me) = kHelloMagic | me;
    for (std::uint64_t i = 0; i < kPatternPages; ++i)
      for (std::uint64_t w = 0; w < kPageSize / 8; w += 64) *word(pattern_page(me, i), w) = pattern(me, i, w);
    for (auto& t : threads) t.join();
    return {0, fmt::format("node {}: {} increments done", me, kThreadsPerNode * increments_), {}};
  }

  coord::PhaseResult check_phase() {
    std::uint64_t expected = std::uint64_t{nodes_} * kThreadsPerNode * increments_;
    std::uint64_t seen = reinterpret_cast<std::atomic<std::uint64_t>*>(word(0))->load();
    if (seen != expected)
      return {1, fmt::format("counter is {}, expected {}", seen, expected), {}};
    for (std::uint32_t n = 0; n < nodes_; ++n) {
      if (*word(1 + n) != (kHelloMagic | n))
        return {1, fmt::format("hello slot of node {} reads {:#x}", n, *word(1 + n)), {}};
      for (std::uint64_t i = 0; i < kPatternPages; ++i)
        for (std::uint64_t w = 0; w < kPageSize / 8; w += 64)
          if (*word(pattern_page(n, i), w) != pattern(n, i, w))
            return {1, fmt::format("pattern of node {} page {} word {} is wrong", n, i, w), {}};
    }
    return {0, fmt::format("counter = {} (exact), {} hello slots and {} pattern pages coherent",
                           seen, nodes_, nodes_ * kPatternPages), {}};
  }

  coord::Counters sample() const override { return dsm_.live_counters(); }

 private:
  coord::Counters stats() const {
    coord::Counters c = {{"counter_increments", kThreadsPerNode * increments_}};
    for (auto& kv : dsm_.snapshot().counters()) c.push_back(std::move(kv));
    return c;
  }

  NodeHost& host_;
  DsmHost dsm_;
  std::uint32_t nodes_;
  std::uint64_t increments_;
  std::uint64_t bytes_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

Result<std::unique_ptr<Workload>> make_dsm_demo_workload(NodeHost& host,
                                                         const coord::MachineConfig& config) {
  auto w = std::make_unique<DsmDemoWorkload>(host, config);
  SSI_TRY(w->start());
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace ssi::cluster
