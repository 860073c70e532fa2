// Per-node DSM statistics. Written on the reactor thread, read from any
// thread (tests, benchmarks, the coordinator's stats export): relaxed atomics.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace ssi::dsm {

// Latencies in power-of-two nanosecond buckets: bucket b counts samples in
// [2^b, 2^(b+1)) ns. Coarse, lock-free, and enough to see a tail.
class Log2Histogram {
 public:
  static constexpr int kBuckets = 48;
  void record(std::chrono::nanoseconds d);
  std::uint64_t count() const;
  // Exact sum of all samples: means (and means over an interval, from two
  // snapshots) without the buckets' factor-of-two resolution.
  std::uint64_t sum_ns() const { return sum_ns_.load(std::memory_order_relaxed); }
  // Upper bound of the bucket holding quantile q (0..1); 0 if empty.
  std::chrono::nanoseconds quantile(double q) const;
  std::string summary() const;  // "n=.. p50<=.. p99<=.. max<=.."
  // Samples in bucket b, [2^b, 2^(b+1)) ns (live metrics export it).
  std::uint64_t bucket(int b) const { return buckets_[b].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// How a fault was served, by the message path on its critical path (the
// requester's view; docs/protocol.md, "Message paths"): one round trip to
// the home (read or write from its copy, zero fill, upgrade nobody else
// shares), or one and a half (read or write of a page another node owned,
// forwarded by it; write that invalidated sharers, who ack the requester).
enum FaultPath : int {
  kPathReadHome,
  kPathReadForwarded,
  kPathWriteHome,
  kPathWriteSharers,
  kPathWriteForwarded,
  kPaths
};
const char* fault_path_name(int path);  // "read_home", ...

struct NodeStats {
  using Counter = std::atomic<std::uint64_t>;
  // Faults by kind: a request sent to the home.
  Counter read_faults{0}, write_faults{0}, upgrade_faults{0};
  Counter zero_fills{0};  // grants installed from a local zero page (no transfer)
  Counter coalesced_faults{0};  // joined a request already in flight
  Counter spurious_faults{0};   // already satisfied when handled: just woken
  Counter bytes_sent{0}, bytes_received{0};  // page payload bytes
  Counter invalidations_sent{0}, invalidations_received{0};
  Counter fetches_sent{0}, fetches_received{0};
  Counter page_migrations{0};  // home: write grants that moved a page to another writer
  Counter migratory_grants{0};  // home: read misses granted writable (migratory page)
  Counter clean_handovers{0};   // migratory grants this node gave up without changing them
  Counter holds{0};         // invalidations/fetches that waited out a hold window
  Counter hold_ns{0};       // total time they waited
  Counter hot_holds{0};     // of them: fetches of a hot page held for its faulting thread
  Counter bad_messages{0};   // rejected input: state unchanged
  Counter local_errors{0};   // failed ioctls / sends on this node
  Counter failed_faults{0};  // faults released unserved after a peer failed
  Log2Histogram read_latency, write_latency, upgrade_latency;  // fault -> installed
  // Per FaultPath: faults served that way, their summed latency (fault ->
  // installed) and summed one-way network delays on the critical path (a
  // message a node sends itself costs none: a fault on a page homed here, a
  // fetch from or invalidation of the home's own copy).
  std::array<Counter, kPaths> path_faults{}, path_ns{}, path_delays{};
  Counter sharer_acks{0};  // InvAcks collected by this node's writes

  std::string summary() const;
  std::string paths() const;  // " read_home=N (mean us) ..." for the paths taken
};

}  // namespace ssi::dsm
