// The coordinator's side of a live vCPU move (docs/mobility.md): emigrate
// on the node the vCPU leaves, immigrate with that state on the node it goes
// to, then placed on every node; the order's callback runs once every node
// has the new placement. If the target cannot take it, the node it left
// takes it back and the machine goes on. Runs inside the coordinator's
// event loop; one move at a time.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <kj/async.h>

#include "convert.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::coord {

class MoveDriver {
 public:
  // `nodes()`: every node's client, index = node id (null = gone).
  // `fail(why)`: stops the machine (exit 1): a vCPU nobody could take.
  MoveDriver(kj::TaskSet& tasks, std::function<std::vector<Node::Client*>()> nodes,
             std::function<void(const std::string&)> fail);
  bool busy() const { return busy_; }
  // `config` gives the placement before the first move.
  void start(MoveOrder order, const MachineConfig& config);
  // Where vCPU `vcpu` runs now (`config` as for start).
  std::uint32_t node_of(std::uint32_t vcpu, const MachineConfig& config);

 private:
  using ImmigrateRequest = capnp::Request<Node::ImmigrateParams, Node::ImmigrateResults>;
  kj::Promise<void> immigrated(capnp::Response<Node::ImmigrateResults>&& r, ImmigrateRequest back,
                               std::shared_ptr<MoveOrder> order, std::shared_ptr<MoveResult> res, SteadyTime t0);
  kj::Promise<void> undo(ImmigrateRequest back, std::shared_ptr<MoveOrder> order, std::shared_ptr<MoveResult> res,
                         std::string why);
  void finish(const std::shared_ptr<MoveOrder>& order, Result<MoveResult> r);

  kj::TaskSet& tasks_;
  std::function<std::vector<Node::Client*>()> nodes_;
  std::function<void(const std::string&)> fail_;
  bool busy_ = false;
  std::vector<std::uint32_t> placement_;  // where each vCPU runs (after moves)
};

}  // namespace ssi::coord
