#include "cluster/workload.hpp"

#include <fmt/format.h>

namespace ssi::cluster {

Result<std::unique_ptr<Workload>> make_ping_workload(NodeHost& host,
                                                     const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_dsm_demo_workload(NodeHost& host,
                                                         const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_workload(NodeHost& host, const coord::MachineConfig& config) {
  if (config.workload == "ping") return make_ping_workload(host, config);
  if (config.workload == "dsm-demo") return make_dsm_demo_workload(host, config);
  return make_error(Errc::kInvalidArgument,
                    fmt::format("unknown workload '{}' (known: dsm-demo, ping)", config.workload));
}

std::uint32_t workload_phases(const std::string& name) { return name == "dsm-demo" ? 2 : 1; }

}  // namespace ssi::cluster
