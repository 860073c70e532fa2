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
#include "dsm/node.hpp"

namespace ssi::cluster {
namespace {

constexpr std::uint64_t kDefaultBytes = 16ull << 20;
constexpr std::uint64_t kDefaultIncrements = 5000;
constexpr unsigned kThreadsPerNode = 2;
constexpr std::uint64_t kHelloMagic = 0x55aa000000000000ull;
constexpr std::uint64_t kPatternPages = 8;

class DsmDemoWorkload final : public Workload {
 public:
  DsmDemoWorkload(NodeHost& host, const coord::MachineConfig& config)
      : host_(host), nodes_(config.nodes),
        increments_(config.workload_arg ? config.workload_arg : kDefaultIncrements),
        bytes_(config.mem_bytes ? config.mem_bytes : kDefaultBytes) {}

  ~DsmDemoWorkload() override { stop(); }

  Result<void> start() {
    std::uint64_t needed = (1 + nodes_ + nodes_ * kPatternPages) * kPageSize;
    if (bytes_ < needed)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("dsm-demo needs at least {} bytes of memory", needed));
    return host_.call([this]() -> Result<void> {
      dsm::NodeConfig nc;
      nc.self = host_.self();
      nc.nodes = nodes_;
      nc.bytes = bytes_;
      SSI_ASSIGN_OR_RETURN(node_, dsm::Node::create(nc, host_.reactor(), host_.transport()));
      return node_->start();
    });
  }

  coord::PhaseResult run_phase(std::uint32_t phase) override {
    coord::PhaseResult r = phase == 0 ? write_phase() : check_phase();
    r.stats = stats();
    return r;
  }

  void stop() override {
    if (!node_) return;
    (void)host_.call([this]() -> Result<void> {
      node_->stop();
      node_.reset();
      return ok();
    }, std::chrono::seconds(5));
  }

 private:
  std::uint64_t* word(std::uint64_t page, std::uint64_t index = 0) const {
    return reinterpret_cast<std::uint64_t*>(node_->base() + page * kPageSize) + index;
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
        for (std::uint64_t i = 0; i < increments_; ++i) counter->fetch_add(1);
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

  coord::Counters stats() const {
    const dsm::NodeStats& s = node_->stats();
    return {{"counter_increments", kThreadsPerNode * increments_},
            {"read_faults", s.read_faults.load()},
            {"write_faults", s.write_faults.load()},
            {"upgrade_faults", s.upgrade_faults.load()},
            {"zero_fills", s.zero_fills.load()},
            {"page_bytes_sent", s.bytes_sent.load()},
            {"page_bytes_received", s.bytes_received.load()},
            {"invalidations_sent", s.invalidations_sent.load()},
            {"invalidations_received", s.invalidations_received.load()},
            {"fetches_sent", s.fetches_sent.load()},
            {"bad_messages", s.bad_messages.load()},
            {"read_fault_p50_us", static_cast<std::uint64_t>(
                 s.read_latency.quantile(0.5).count() / 1000)}};
  }

  NodeHost& host_;
  std::uint32_t nodes_;
  std::uint64_t increments_;
  std::uint64_t bytes_;
  std::unique_ptr<dsm::Node> node_;
};

}  // namespace

Result<std::unique_ptr<Workload>> make_dsm_demo_workload(NodeHost& host,
                                                         const coord::MachineConfig& config) {
  auto w = std::make_unique<DsmDemoWorkload>(host, config);
  SSI_TRY(w->start());
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace ssi::cluster
