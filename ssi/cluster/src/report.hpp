// What a finished run tells its user: stdout carries only the machine's
// own output (the guest console, or a host workload's result lines); every
// line of ssi's own and the stats table go to stderr, with units.
#pragma once

#include <chrono>
#include <string>

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

struct RunEnd {
  const coord::MachineConfig& config;
  const Result<coord::Outcome>& outcome;
  std::chrono::nanoseconds wall;
  int signal = 0;         // SIGINT / SIGTERM that stopped the run, or 0
  std::string json_path;  // non-empty: also write the JSON there
};

// Prints the end of a run and returns the process exit code
// (base/exit_code.hpp): 0, the failing node's code, kNodeLost, 128 + signal
// when interrupted
// (one line only), 2 when the JSON cannot be written.
int report_run(const RunEnd& end);

// One row per counter, one column per node; values with units
// ("123.4 us", "1.50 MiB") where the counter's name carries one.
std::string human_stats_table(const std::vector<coord::NodeReport>& nodes);

// "read_fault_mean_ns" = 1234 -> {"read_fault_mean", "1.2 us"}.
std::pair<std::string, std::string> human_counter(const std::string& name, std::uint64_t value);

}  // namespace ssi::cluster
