#include "cluster/workload.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ssi::cluster {

Result<std::unique_ptr<Workload>> make_ping_workload(NodeHost& host,
                                                     const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_dsm_demo_workload(NodeHost& host,
                                                         const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_lab_workload(NodeHost& host,
                                                   const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_machine_workload(NodeHost& host,
                                                        const coord::MachineConfig& config);

Result<std::unique_ptr<Workload>> make_spin_workload(NodeHost& host, const coord::MachineConfig& config);

namespace {
// "machine-demo" never reaches a node: the launcher turns it into "guest" or
// "dsm-demo" (resolve_machine_demo); its phases and sizes are those of both.
bool is_machine(const std::string& name) { return name == "guest" || name == "machine-demo"; }
bool is_lab(const std::string& name) { return name.starts_with("lab-"); }
}  // namespace

Result<std::unique_ptr<Workload>> make_workload(NodeHost& host, const coord::MachineConfig& config) {
  if (config.workload == "ping") return make_ping_workload(host, config);
  if (config.workload == "dsm-demo") return make_dsm_demo_workload(host, config);
  if (config.workload == "guest") return make_machine_workload(host, config);
  if (config.workload == "vcpu-spin") return make_spin_workload(host, config);
  if (is_lab(config.workload)) {
    auto w = make_lab_workload(host, config);
    if (w.ok() || w.error().code != Errc::kNotFound) return w;
  }
  return make_error(Errc::kInvalidArgument,
                    fmt::format("unknown workload '{}' (known: {})", config.workload,
                                fmt::join(workload_names(), ", ")));
}

const std::vector<std::string>& workload_names() {
  static const std::vector<std::string> names = {
      "dsm-demo",    "ping",        "guest",           "machine-demo",      "lab-private",
      "lab-read-mostly", "lab-counter", "lab-false-sharing", "lab-prodcons", "vcpu-spin"};
  return names;
}

namespace {

struct Defaults {
  const char* name;
  std::uint64_t rounds;
  std::uint64_t mem_bytes;
};

constexpr std::uint64_t kHostMem = 16ull << 20;  // host workloads' DSM region

// Rounds are what --rounds counts: round trips per peer (ping), increments
// per thread (dsm-demo, machine-demo), operations per node (lab-*).
constexpr Defaults kDefaults[] = {
    {"ping", 2000, 0},          {"dsm-demo", 5000, kHostMem},
    {"machine-demo", 500, kHostMem}, {"lab-private", 4000, kHostMem},
    {"lab-read-mostly", 200, kHostMem}, {"lab-counter", 500, kHostMem},
    {"lab-false-sharing", 2000, kHostMem}, {"lab-prodcons", 500, kHostMem},
    {"vcpu-spin", 2000, 0}, {"guest", 0, 64ull << 20}};  // vcpu-spin: milliseconds of spinning

}  // namespace

coord::MachineConfig with_defaults(coord::MachineConfig config) {
  config.phases = workload_phases(config.workload);
  for (const auto& d : kDefaults) {
    if (config.workload != d.name) continue;
    if (config.workload_arg == 0) config.workload_arg = d.rounds;
    if (config.mem_bytes == 0) config.mem_bytes = d.mem_bytes;
  }
  // machine-demo, vcpu-spin: two vCPUs per node unless `ssi demo --vcpus`.
  bool scripted_vcpus = config.workload == "machine-demo" || config.workload == "vcpu-spin";
  if (scripted_vcpus && config.vcpus < config.nodes) config.vcpus = 2 * config.nodes;
  if (config.vcpus == 0) config.vcpus = 1;
  return config;
}

std::uint32_t workload_phases(const std::string& name) {
  if (is_lab(name)) return 3;
  if (is_machine(name)) return 2;  // load, run
  return name == "dsm-demo" ? 2 : 1;
}

}  // namespace ssi::cluster
