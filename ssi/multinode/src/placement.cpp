#include "multinode/placement.hpp"

#include <fmt/format.h>

namespace ssi::multinode {

Placement Placement::round_robin(std::uint32_t vcpus, std::uint32_t nodes) {
  Placement p;
  p.nodes = nodes;
  for (std::uint32_t i = 0; i < vcpus; ++i) p.vcpu_node.push_back(i % nodes);
  return p;
}

Result<Placement> Placement::from_map(std::uint32_t nodes, std::vector<std::uint32_t> vcpu_node) {
  if (vcpu_node.empty()) return make_error(Errc::kInvalidArgument, "placement has no vCPUs");
  for (std::size_t i = 0; i < vcpu_node.size(); ++i)
    if (vcpu_node[i] >= nodes)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("vCPU {} placed on node {} of {}", i, vcpu_node[i], nodes));
  if (vcpu_node[0] != 0)
    return make_error(Errc::kInvalidArgument, "vCPU 0 (the BSP) must run on node 0");
  return Placement{nodes, std::move(vcpu_node)};
}

std::vector<std::uint32_t> Placement::vcpus_on(NodeId node) const {
  std::vector<std::uint32_t> out;
  for (std::uint32_t i = 0; i < vcpus(); ++i)
    if (vcpu_node[i] == node.value()) out.push_back(i);
  return out;
}

}  // namespace ssi::multinode
