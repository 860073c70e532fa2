// Machine-readable result of one run (`--json FILE` of `ssi demo` and
// `ssi coordinator`): the configuration, the outcome and every node's last
// phase result with its counters. The interconnect lab reads these.
#pragma once

#include <chrono>
#include <string>

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

// Schema tag written as "schema"; bump when fields change meaning.
inline constexpr const char* kOutcomeSchema = "ssi-run/1";

std::string outcome_json(const coord::MachineConfig& config, const Result<coord::Outcome>& outcome,
                         std::chrono::nanoseconds wall);

// Written to PATH.tmp then renamed: a reader never sees half a file.
Result<void> write_outcome_json(const std::string& path, const coord::MachineConfig& config,
                                const Result<coord::Outcome>& outcome,
                                std::chrono::nanoseconds wall);

}  // namespace ssi::cluster
