// Node retirements ordered on the control endpoint (`ssi retire ADDR --node
// A [--to B]`, docs/mobility.md "Retiring a node"), one at a time to the
// coordinator; and the launcher's knowledge of which node processes left
// on purpose (their exit with code 0 is not a failure).
#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

#include <nlohmann/json_fwd.hpp>

namespace ssi::cluster {

class RetireOrders {
 public:
  // Installs next_retire and on_retired in `co`.
  void feed(coord::CoordinatorOptions& co);
  // Any thread: orders it and waits for the answer (or `timeout`; an order
  // the coordinator has not taken by then is withdrawn).
  Result<coord::RetireResult> retire(std::uint32_t node, std::optional<std::uint32_t> to, bool precopy,
                                     std::chrono::milliseconds timeout);
  // The machine ended: queued orders fail, new ones are refused.
  void close();
  // Coordinator thread: node `id` retired (its process may exit, code 0).
  bool retired(std::uint32_t id) const { return retired_.contains(id); }

 private:
  std::optional<coord::RetireOrder> next();
  std::mutex mu_;
  std::deque<coord::RetireOrder> queue_;  // under mu_
  bool closed_ = false;                   // under mu_
  std::set<std::uint32_t> retired_;       // coordinator thread
};

// `{"execute":"retire-node","node":A[,"to":B][,"precopy":false]}` on the control endpoint:
// the one-line JSON reply.
std::string answer_retire_request(RetireOrders& orders, const nlohmann::ordered_json& request);

// `ssi retire ADDR --node A [--to B] [--no-precopy] [--json]`: exit 0 and
// one line, or 2 and one error line.
int run_retire_command(const std::string& address, std::uint32_t node, std::optional<std::uint32_t> to,
                       bool precopy, bool json);

}  // namespace ssi::cluster
