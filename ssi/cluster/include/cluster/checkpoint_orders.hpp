// When the launcher of a multi-node machine orders a checkpoint
// (docs/checkpoint.md): `ssi run --nodes N --checkpoint-dir DIR` with
// --checkpoint-after SECONDS (the launcher's clock) or --checkpoint-on TEXT
// (node 0 reports a matching console line in its live counters, sampled
// every 100 ms), and `ssi checkpoint ADDR` orders arriving on the control
// endpoint. One order at a time reaches the coordinator.
#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

struct CheckpointPlan {
  std::string dir;
  double after_s = 0;
  std::string on_console;
  bool enabled() const { return !dir.empty() && (after_s > 0 || !on_console.empty()); }
};

class CheckpointOrders {
 public:
  explicit CheckpointOrders(CheckpointPlan plan) : plan_(std::move(plan)) {}
  // Installs next_checkpoint (and a sampler for --checkpoint-on) in `co`;
  // the config carries the console text to node 0.
  void feed(coord::CoordinatorOptions& co);
  // Any thread: an order from the control endpoint.
  void push(coord::CheckpointOrder order);

 private:
  std::optional<coord::CheckpointOrder> next();
  CheckpointPlan plan_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool planned_done_ = false;
  bool matched_ = false;  // coordinator thread (on_sample, next)
  std::mutex mu_;
  std::deque<coord::CheckpointOrder> queue_;  // under mu_
};

}  // namespace ssi::cluster
