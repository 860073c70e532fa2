// `ssi node`: one node process of a machine, driven by a coordinator.
#pragma once

#include <chrono>
#include <string>

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

}  // namespace ssi::cluster
