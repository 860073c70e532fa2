// `ssi node`: one node process of a machine, driven by a coordinator.
#pragma once

#include <chrono>
#include <string>

#include "base/secret.hpp"

namespace ssi::cluster {

struct NodeCommandOptions {
  std::string coordinator;  // HOST:PORT
  unsigned id = 0;
  std::string transport = "tcp";
  std::string listen;  // transport listen address; "" = backend default
  // Nodes may start before the coordinator listens (ssh, srun): keep trying
  // to reach it, with backoff, this long.
  std::chrono::milliseconds join_timeout{std::chrono::seconds(60)};
};

int run_node_command(const NodeCommandOptions& options);

// The machine secret from the environment (base/secret.hpp); when none is
// set, a warning naming `who` and the empty secret (no authentication).
Result<MachineSecret> machine_secret(const std::string& who);

}  // namespace ssi::cluster
