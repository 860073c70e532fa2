// Copies between the plain structs of types.hpp and Cap'n Proto messages,
// and what the coordinator and node sides of the control loop share.
#pragma once

#include <chrono>

#include "coordinator.capnp.h"
#include "coordinator/types.hpp"

namespace ssi::coord {

using capnp_schema::Coordinator;
using capnp_schema::Node;

// Both sides pump their kj event loop in slices of this length and check
// heartbeats, completions and deadlines in between.
constexpr long kPollMs = 20;
using SteadyTime = std::chrono::steady_clock::time_point;
inline SteadyTime now() { return std::chrono::steady_clock::now(); }
inline std::uint64_t us_since(SteadyTime t0) {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now() - t0).count());
}

void to_capnp(const NodeInfo& in, capnp_schema::NodeInfo::Builder out);
NodeInfo from_capnp(capnp_schema::NodeInfo::Reader in);

void to_capnp(const MachineConfig& in, capnp_schema::MachineConfig::Builder out);
MachineConfig from_capnp(capnp_schema::MachineConfig::Reader in);

void to_capnp(const PhaseResult& in, capnp_schema::PhaseResult::Builder out);
PhaseResult from_capnp(capnp_schema::PhaseResult::Reader in);

}  // namespace ssi::coord
