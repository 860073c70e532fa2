// `ssi node`: one node process of a machine, driven by a coordinator.
#pragma once

#include <string>

namespace ssi::cluster {

struct NodeCommandOptions {
  std::string coordinator;  // HOST:PORT
  unsigned id = 0;
  std::string transport = "tcp";
  std::string listen;  // transport listen address; "" = backend default
};

int run_node_command(const NodeCommandOptions& options);

}  // namespace ssi::cluster
