// vCPU moves asked for while a machine runs (docs/mobility.md): the control
// endpoint (`ssi move`) and the placement policy put orders here from their
// threads; the coordinator takes them (CoordinatorOptions::next_move) on its
// own and answers each when every node has the new placement.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

#include <nlohmann/json_fwd.hpp>

namespace ssi::cluster {

class MoveQueue {
 public:
  // Blocks until the move is done or failed, or `timeout` passed (an order
  // the coordinator did not take yet is then withdrawn).
  Result<coord::MoveResult> move(std::uint32_t vcpu, std::uint32_t to,
                                 std::chrono::milliseconds timeout);
  // Queues without waiting; `done` runs on the coordinator's thread.
  void post(coord::MoveOrder order);
  // For CoordinatorOptions::next_move.
  std::optional<coord::MoveOrder> next();

 private:
  std::mutex mu_;
  std::deque<coord::MoveOrder> orders_;
};

// `{"execute":"move-vcpu","vcpu":K,"to":B}` on the metrics endpoint: does
// the move through `queue` and returns the one-line JSON reply.
std::string answer_move_request(MoveQueue& queue, const nlohmann::ordered_json& request);

// `ssi move ADDR --vcpu K --to B [--json]`: exit 0 and one line with the
// pause time, or 2 and one error line.
int run_move_command(const std::string& address, std::uint32_t vcpu, std::uint32_t to, bool json);

}  // namespace ssi::cluster
