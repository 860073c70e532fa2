// Base of the interconnect lab's host-level DSM workloads. Three phases
// with a cluster-wide barrier between them:
//   0 setup  - first touches, initial data (not measured);
//   1 run    - the measured part: wall time on this node, operations done
//              and the DSM stats of just this interval;
//   2 check  - every node verifies what the run must have left behind
//              (a wrong value fails the cell, so numbers are never reported
//              for an incoherent run).
// The measured counters are attached to every later phase result, so the
// coordinator's last report (and --json) carries them.
#pragma once

#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <fmt/format.h>

#include "cluster/workload.hpp"
#include "dsm_host.hpp"

namespace ssi::cluster {

class LabWorkload : public Workload {
 public:
  static constexpr std::uint32_t kPhases = 3;

  // Rounds and memory come filled in by with_defaults().
  LabWorkload(NodeHost& host, const coord::MachineConfig& config)
      : dsm_(host), nodes_(config.nodes), rounds_(config.workload_arg), bytes_(config.mem_bytes) {}

  Result<void> start() { return dsm_.start(nodes_, bytes_); }
  // Waits give up; the DSM keeps serving peers until destruction.
  void stop() override { stopping_ = true; }
  void fail(const std::string& why) override { dsm_.fail(why); }
  coord::PhaseResult run_phase(std::uint32_t phase) override;
  coord::Counters sample() const override { return dsm_.live_counters(); }

 protected:
  virtual Result<void> setup() { return ok(); }
  virtual Result<std::uint64_t> run() = 0;  // operations done by this node
  virtual Result<std::string> check() = 0;  // what was verified

  std::uint32_t me() const { return dsm_.self().value(); }
  // All nodes meet here before the clock starts: the coordinator's phase
  // start reaches nodes milliseconds apart, long enough for a short
  // contended run on one node to finish before another begins.
  Result<void> start_line();
  // Spins (yielding the CPU) until `done`; bounded so that a lost update
  // fails the cell instead of hanging the sweep.
  Result<void> wait_until(const std::function<bool()>& done, const char* what) const;

  DsmHost dsm_;
  std::uint32_t nodes_;
  std::uint64_t rounds_;
  std::uint64_t bytes_;

 private:
  coord::Counters measured_;
  std::atomic<bool> stopping_{false};
};

// Relaxed atomic access to plain words of DSM memory: keeps the compiler
// from merging or dropping stores the workloads exist to make.
inline void store(std::uint64_t* w, std::uint64_t v,
                  std::memory_order o = std::memory_order_relaxed) {
  std::atomic_ref<std::uint64_t>(*w).store(v, o);
}
inline std::uint64_t load(std::uint64_t* w, std::memory_order o = std::memory_order_relaxed) {
  return std::atomic_ref<std::uint64_t>(*w).load(o);
}

}  // namespace ssi::cluster
