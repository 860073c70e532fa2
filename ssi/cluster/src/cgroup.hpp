// Resource shares of one node process through the kernel's own cgroup
// controllers (docs/operations.md):
//   - one cgroup per local vCPU thread with a CPU weight (the guarantee:
//     under contention CPU time splits in proportion to the weights) and
//     an optional CFS quota (the burstable limit, % of one CPU);
//   - a memory limit on the node process (its resident memory, of which
//     the DSM's resident guest pages are the bulk).
// cgroup v2 where the cpu controller is on the unified hierarchy
// (threaded children for the vCPUs), v1 otherwise (the cpu and memory
// hierarchies, threads moved through `tasks`).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "coordinator/types.hpp"

namespace ssi::cluster {

struct ResourceLimits {
  std::vector<std::uint32_t> vcpu_shares;  // weight per vCPU index; missing = 1
  std::uint32_t vcpu_quota_percent = 0;    // 0 = no limit
  std::uint64_t node_mem_limit = 0;        // bytes, 0 = no limit
  bool any() const { return !vcpu_shares.empty() || vcpu_quota_percent || node_mem_limit; }
  static ResourceLimits of(const coord::MachineConfig& config);
};

class NodeCgroups {
 public:
  // Creates this node's cgroups for `vcpus` (the vCPU indices it runs).
  // kUnsupported with the reason when no cgroup hierarchy is writable.
  static Result<std::unique_ptr<NodeCgroups>> create(std::uint32_t node,
                                                     const ResourceLimits& limits,
                                                     const std::vector<std::uint32_t>& vcpus);
  ~NodeCgroups();  // the process goes back to its own cgroups; ours are removed
  NodeCgroups(const NodeCgroups&) = delete;
  NodeCgroups& operator=(const NodeCgroups&) = delete;

  // Moves the calling thread into vCPU `vcpu`'s cgroup. vCPU threads call
  // it first thing (MachineConfig::on_vcpu_thread).
  Result<void> enter_vcpu(std::uint32_t vcpu);
  // cpu_weight / cpu_quota_percent per vCPU, node memory limit and usage.
  coord::Counters counters() const;
  const char* version() const { return v2_ ? "v2" : "v1"; }

 private:
  NodeCgroups() = default;
  Result<void> setup_v1(const std::string& name, const std::vector<std::uint32_t>& vcpus);
  Result<void> setup_v2(const std::string& name, const std::vector<std::uint32_t>& vcpus);
  std::string vcpu_dir(std::uint32_t vcpu) const;

  bool v2_ = false;
  ResourceLimits limits_;
  std::vector<std::uint32_t> vcpus_;
  std::string cpu_dir_;          // our cgroup holding the per-vCPU ones
  std::string mem_dir_;          // our memory cgroup ("" = no memory limit)
  std::string mem_parent_;       // where the process goes back to
  std::vector<std::string> made_;  // directories we created, in creation order
};

// The node's cgroups when the config asks for any resource control (null
// otherwise); an error names what could not be set up.
Result<std::unique_ptr<NodeCgroups>> cgroups_for(const coord::MachineConfig& config,
                                                 std::uint32_t node,
                                                 const std::vector<std::uint32_t>& vcpus);

// What every vCPU thread runs first: joins its cgroup (no-op without one).
void enter_vcpu_cgroup(NodeCgroups* cgroups, std::uint32_t vcpu);

}  // namespace ssi::cluster
