// The coordinator's side of retiring a node (docs/mobility.md, "Retiring a
// node"): move every vCPU of the retiring node A to node B (the move
// driver's moves, one at a time), have B pre-copy A's pages while the guest
// runs, then at the checkpoint barrier (every node's vCPUs parked) have A
// hand its DSM share to B and every other node learn that A left, resume,
// and stop A. Runs inside the coordinator's event loop, one step per poll.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <kj/async.h>

#include "convert.hpp"
#include "coordinator/coordinator.hpp"
#include "move_driver.hpp"

namespace ssi::coord {

class RetireDriver {
 public:
  // `nodes()`: every node's client, index = node id (null = gone or
  // retired). `retired(A)`: A left the machine (the coordinator stops
  // waiting for it). `fail(why)`: stops the machine (a handover that failed
  // half way leaves the memory in doubt).
  RetireDriver(kj::TaskSet& tasks, std::function<std::vector<Node::Client*>()> nodes, MoveDriver& moves,
               const MachineConfig& config, std::function<void(std::uint32_t)> retired,
               std::function<void(const std::string&)> fail);
  ~RetireDriver();
  bool busy() const { return run_ != nullptr; }
  void start(RetireOrder order);
  void poll();

 private:
  struct Run;
  void next_move();
  void precopy();
  void status(std::uint32_t node, std::function<void(std::string)> done);
  template <class Response>
  void expect_started(std::uint32_t node, kj::Promise<Response>&& reply);
  void pause_all();
  void hand_over();
  void tell_all();
  void finish(std::optional<Error> error);

  kj::TaskSet& tasks_;
  std::function<std::vector<Node::Client*>()> nodes_;
  MoveDriver& moves_;
  const MachineConfig& config_;
  std::function<void(std::uint32_t)> retired_;
  std::function<void(const std::string&)> fail_;
  std::vector<bool> gone_;   // nodes retired earlier
  std::vector<bool> taken_;  // standby nodes that took a share: standby no more
  std::shared_ptr<Run> run_;
};

}  // namespace ssi::coord
