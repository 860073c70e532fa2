#include "cluster/workload.hpp"

#include <fmt/format.h>

namespace ssi::cluster {

Result<std::unique_ptr<Workload>> make_ping_workload(NodeHost& host,
                                                     const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_dsm_demo_workload(NodeHost& host,
                                                         const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_lab_workload(NodeHost& host,
                                                   const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_machine_workload(NodeHost& host,
                                                        const coord::MachineConfig& config);

namespace {
bool is_machine(const std::string& name) { return name == "guest" || name == "machine-demo"; }
bool is_lab(const std::string& name) { return name.starts_with("lab-"); }
}  // namespace

Result<std::unique_ptr<Workload>> make_workload(NodeHost& host, const coord::MachineConfig& config) {
  if (config.workload == "ping") return make_ping_workload(host, config);
  if (config.workload == "dsm-demo") return make_dsm_demo_workload(host, config);
  if (is_machine(config.workload)) return make_machine_workload(host, config);
  if (is_lab(config.workload)) {
    auto w = make_lab_workload(host, config);
    if (w.ok() || w.error().code != Errc::kNotFound) return w;
  }
  return make_error(Errc::kInvalidArgument,
                    fmt::format("unknown workload '{}' (known: {})", config.workload, kWorkloadNames));
}

std::uint32_t workload_phases(const std::string& name) {
  if (is_lab(name)) return 3;
  if (is_machine(name)) return 2;  // load, run
  return name == "dsm-demo" ? 2 : 1;
}

}  // namespace ssi::cluster
