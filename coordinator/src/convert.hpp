// Copies between the plain structs of types.hpp and Cap'n Proto messages.
#pragma once

#include "coordinator.capnp.h"
#include "coordinator/types.hpp"

namespace ssi::coord {

void to_capnp(const NodeInfo& in, capnp_schema::NodeInfo::Builder out);
NodeInfo from_capnp(capnp_schema::NodeInfo::Reader in);

void to_capnp(const MachineConfig& in, capnp_schema::MachineConfig::Builder out);
MachineConfig from_capnp(capnp_schema::MachineConfig::Reader in);

void to_capnp(const PhaseResult& in, capnp_schema::PhaseResult::Builder out);
PhaseResult from_capnp(capnp_schema::PhaseResult::Reader in);

}  // namespace ssi::coord
