// Which node runs each vCPU (APIC id == vCPU index under the ssi boot
// convention), so IPIs and the boot info know where a CPU lives.
#pragma once

#include <cstdint>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::multinode {

struct Placement {
  std::uint32_t nodes = 1;
  std::vector<std::uint32_t> vcpu_node;  // index = vCPU

  // vCPU i on node i % nodes: every node gets one before any gets two.
  static Placement round_robin(std::uint32_t vcpus, std::uint32_t nodes);
  // Checks an explicit map (e.g. from the coordinator's config).
  static Result<Placement> from_map(std::uint32_t nodes, std::vector<std::uint32_t> vcpu_node);

  std::uint32_t vcpus() const { return static_cast<std::uint32_t>(vcpu_node.size()); }
  NodeId node_of(std::uint32_t vcpu) const { return NodeId{vcpu_node.at(vcpu)}; }
  std::vector<std::uint32_t> vcpus_on(NodeId node) const;
};

}  // namespace ssi::multinode
