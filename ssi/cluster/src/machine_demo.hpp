// Chooses what `--workload machine-demo` runs on this host (machine_demo.cpp).
#pragma once

#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

// "guest" on real vCPUs when KVM is usable and config.kernel is set, else
// "dsm-demo" (with the reason on stderr). Other workloads pass unchanged.
coord::MachineConfig resolve_machine_demo(coord::MachineConfig config);

}  // namespace ssi::cluster
