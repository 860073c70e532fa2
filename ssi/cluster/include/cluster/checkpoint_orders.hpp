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

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

#include <nlohmann/json_fwd.hpp>

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
  // Any thread: orders it and waits for the answer (or `timeout`; an order
  // the coordinator has not taken by then is withdrawn).
  Result<coord::CheckpointResult> checkpoint(const std::string& dir, bool resume,
                                             std::chrono::milliseconds timeout);
  // The machine ended: queued orders fail, new ones are refused.
  void close();

 private:
  std::optional<coord::CheckpointOrder> next();
  CheckpointPlan plan_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  bool planned_done_ = false;
  bool matched_ = false;  // coordinator thread (on_sample, next)
  std::mutex mu_;
  std::deque<coord::CheckpointOrder> queue_;  // under mu_
  bool closed_ = false;                       // under mu_
};

// `{"execute":"checkpoint","dir":"/abs/dir","continue":true|false}` on the
// control endpoint: the one-line JSON reply.
std::string answer_checkpoint_request(CheckpointOrders& orders, const nlohmann::ordered_json& request);

// `ssi checkpoint ADDR --dir DIR [--continue] [--json]`: exit 0 and one
// line, or 2 and one error line.
int run_checkpoint_command(const std::string& address, const std::string& dir, bool resume, bool json);

}  // namespace ssi::cluster
