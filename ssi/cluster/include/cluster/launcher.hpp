// Starts a machine on this host: the coordinator in this process and N
// `ssi node` processes (fork + exec of this binary), wired over loopback.
// The embedded default behind `ssi run --nodes N` and `ssi demo`.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "cluster/checkpoint_orders.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

struct LocalClusterOptions {
  coord::MachineConfig config;     // nodes, transport, workload ...
  std::vector<std::string> node_args;  // extra arguments for every `ssi node`
  coord::Timing timing;
  bool verbose = true;             // progress lines on stderr
  std::string json_path;           // non-empty: write the outcome as JSON here
  std::string metrics;             // non-empty: live metrics endpoint (cluster/metrics.hpp)
  CheckpointPlan checkpoint;       // `ssi run --nodes N --checkpoint-*` (config.restore_dir: --restore)
};

// Runs until the machine finishes or fails; returns the process exit code
// (base/exit_code.hpp: 0 ok, the failing node's code, kNodeLost, 128 + signal
// when interrupted). Prints the
// per-node stats table at exit.
int run_local_cluster(const LocalClusterOptions& options);

struct CoordinatorCommandOptions {
  std::string listen = "0.0.0.0:7470";  // HOST:PORT
  coord::MachineConfig config;
  std::string json_path;                // non-empty: write the outcome as JSON here
  std::string metrics;                  // non-empty: live metrics endpoint (cluster/metrics.hpp)
};

// `ssi coordinator`: waits for nodes started elsewhere (ssh, Slurm...).
int run_coordinator_command(const CoordinatorCommandOptions& options);

// Installs SIGINT/SIGTERM handlers that set the returned flag (Ctrl-C
// stops the machine cleanly instead of killing the process).
const std::atomic<bool>& install_interrupt_flag();

}  // namespace ssi::cluster
