// The node side of the control plane: joins the coordinator, serves its
// orders into a NodeRuntime, answers heartbeats, and notices when the
// coordinator disappears.
#pragma once

#include <string>

#include "base/secret.hpp"
#include "coordinator/types.hpp"

namespace ssi::coord {

struct NodeOptions {
  std::string coordinator;  // HOST:PORT
  NodeInfo info;
  Timing timing;
  MachineSecret secret;
};

struct NodeExit {
  int exit_code = 0;  // base/exit_code.hpp: kOk stopped normally, kError refused, kNodeLost failure
  std::string message;
};

// Runs on the calling thread until the coordinator stops this node or is lost.
NodeExit run_node(const NodeOptions& options, NodeRuntime& runtime);

}  // namespace ssi::coord
