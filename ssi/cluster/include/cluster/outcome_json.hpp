// Machine-readable result of one run (`--json FILE` of `ssi run`, `ssi
// demo` and `ssi coordinator`): the configuration as used, the version and
// git revision, the exit code and reason, and every node's last phase
// result with its counters (per-vCPU ones grouped under "vcpus"). The
// interconnect lab reads these.
#pragma once

#include <chrono>
#include <string>

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

// Schema tag written as "schema"; bump when fields change meaning.
inline constexpr const char* kOutcomeSchema = "ssi-run/1";

// What the launcher knows beyond the coordinator's outcome.
struct RunFacts {
  std::chrono::nanoseconds wall{0};
  int signal = 0;  // SIGINT / SIGTERM that ended the run, or 0
};

std::string outcome_json(const coord::MachineConfig& config, const Result<coord::Outcome>& outcome,
                         const RunFacts& facts);

// Written to PATH.tmp then renamed: a reader never sees half a file.
Result<void> write_outcome_json(const std::string& path, const coord::MachineConfig& config,
                                const Result<coord::Outcome>& outcome, const RunFacts& facts);

}  // namespace ssi::cluster
