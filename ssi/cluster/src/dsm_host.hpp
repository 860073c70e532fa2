// One node's DSM for host-level workloads (dsm-demo, the lab workloads):
// starts a dsm::Node on the NodeHost's reactor, gives typed access to the
// coherent memory, and snapshots the node's stats so a workload can report
// what one interval (its measured phase) cost.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "cluster/node_host.hpp"
#include "coordinator/types.hpp"
#include "dsm/node.hpp"

namespace ssi::cluster {

// Plain copy of dsm::NodeStats counters (and latency sums) at one instant.
struct DsmSnapshot {
  std::uint64_t read_faults = 0, write_faults = 0, upgrade_faults = 0, zero_fills = 0;
  std::uint64_t coalesced = 0, bytes_sent = 0, bytes_received = 0;
  std::uint64_t invalidations_sent = 0, invalidations_received = 0;
  std::uint64_t fetches_sent = 0, bad_messages = 0;
  std::uint64_t holds = 0, hold_ns = 0;
  std::uint64_t read_n = 0, read_ns = 0, write_n = 0, write_ns = 0, upgrade_n = 0, upgrade_ns = 0;
  // Faults by message path (dsm::FaultPath): "<path>_faults",
  // "<path>_fault_mean_ns" and "<path>_delays" (summed one-way delays).
  std::array<std::uint64_t, dsm::kPaths> path_n{}, path_ns{}, path_delays{};

  static DsmSnapshot of(const dsm::NodeStats& s);
  DsmSnapshot operator-(const DsmSnapshot& earlier) const;
  // As report counters; the *_fault_mean_ns are means over the interval.
  coord::Counters counters() const;
};

// Cumulative counters for live metrics: the snapshot's, plus each fault
// kind's latency histogram as "<kind>_latency_bucket.<b>" (non-empty
// buckets) and "<kind>_latency_sum_ns", and p50 / p99 bucket bounds.
coord::Counters live_dsm_counters(const dsm::NodeStats& stats);

class DsmHost {
 public:
  explicit DsmHost(NodeHost& host) : host_(host) {}
  ~DsmHost() { stop(); }
  DsmHost(const DsmHost&) = delete;
  DsmHost& operator=(const DsmHost&) = delete;

  // `bytes` of coherent memory homed in equal chunks over `nodes` nodes.
  Result<void> start(std::uint32_t nodes, std::uint64_t bytes);
  // Stops serving faults and frames and unmaps the memory: only once no
  // thread uses it (after the worker is joined).
  void stop();
  // Any thread but the reactor's: fail every fault from now on (see
  // dsm::Node::fail); a peer's death does it by itself (peer-down report).
  void fail(const std::string& why);

  std::byte* page(std::uint64_t p) const { return node_->base() + p * kPageSize; }
  std::uint64_t* word(std::uint64_t p, std::uint64_t index = 0) const {
    return reinterpret_cast<std::uint64_t*>(page(p)) + index;
  }
  std::atomic<std::uint64_t>* atomic_word(std::uint64_t p, std::uint64_t index = 0) const {
    return reinterpret_cast<std::atomic<std::uint64_t>*>(word(p, index));
  }
  std::uint64_t pages() const { return node_->homes().pages(); }
  // First page homed at `node` (equal chunks: chunk k lives on node k).
  std::uint64_t first_page_of(std::uint32_t node) const;
  std::uint64_t pages_of(std::uint32_t node) const;
  NodeId self() const { return host_.self(); }
  DsmSnapshot snapshot() const { return DsmSnapshot::of(node_->stats()); }
  coord::Counters live_counters() const;

 private:
  NodeHost& host_;
  std::unique_ptr<dsm::Node> node_;
};

}  // namespace ssi::cluster
