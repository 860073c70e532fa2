// The coordinator's side of a whole-machine checkpoint (docs/checkpoint.md):
// pause every node's vCPUs (a barrier), wait until no IPI is in flight
// between nodes, collect every node's vCPU states, have node 0 write the
// checkpoint (polled: it runs in the background there), then resume or
// stop every node. Runs inside the coordinator's event loop, one step per
// poll, so heartbeats go on while node 0 writes.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <kj/async.h>

#include "convert.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::coord {

class CheckpointDriver {
 public:
  // `nodes()`: every node's client, index = node id (null = gone).
  // `fail(why)`: stops the machine with exit code 2 (a failed checkpoint
  // that was to stop it anyway).
  CheckpointDriver(kj::TaskSet& tasks, std::function<std::vector<Node::Client*>()> nodes,
                   std::function<void(const std::string&)> fail);
  ~CheckpointDriver();
  bool busy() const { return run_ != nullptr; }
  void start(CheckpointOrder order);
  // Each poll of the coordinator's loop: the next step when its time came.
  void poll();

 private:
  struct Run;
  void pause_all();
  void quiesce();
  void save_all();
  void write();
  void written();
  void finish(std::optional<Error> error);

  kj::TaskSet& tasks_;
  std::function<std::vector<Node::Client*>()> nodes_;
  std::function<void(const std::string&)> fail_;
  std::shared_ptr<Run> run_;
};

}  // namespace ssi::coord
