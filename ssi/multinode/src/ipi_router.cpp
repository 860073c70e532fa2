#include "multinode/ipi_router.hpp"

#include <fmt/format.h>

#include "multinode/wire.hpp"

namespace ssi::multinode {

std::vector<NodeId> ClusterIpiRouter::remote_nodes(const vcpu::Ipi& ipi, NodeId self,
                                                   const Placement& placement) {
  using vcpu::DestShorthand;
  if (ipi.shorthand == DestShorthand::kSelf) return {};
  // A physical destination that names a vCPU (APIC id == vCPU index) lives
  // on exactly one node; anything else (broadcast, logical, shorthands) may
  // hit any node.
  if (ipi.shorthand == DestShorthand::kNone && !ipi.logical &&
      ipi.destination < placement.vcpus()) {
    NodeId n = placement.node_of(ipi.destination);
    if (n == self) return {};
    return {n};
  }
  std::vector<NodeId> all;
  for (std::uint32_t n = 0; n < placement.nodes; ++n)
    if (n != self.value()) all.push_back(NodeId{n});
  return all;
}

void ClusterIpiRouter::send_ipi(const vcpu::Ipi& ipi) {
  local_.send_ipi(ipi);
  for (NodeId peer : remote_nodes(ipi, self_, placement_)) {
    auto r = data_.send(peer, encode_ipi(ipi));
    if (!r) return;  // the machine is exiting
    if (!r->ok()) {
      Error e = r->error();
      e.message = fmt::format("IPI from vCPU {} to node {}: {}", ipi.source.value(), peer.value(),
                              e.message);
      on_error_(e);
      return;
    }
    sent_remote_.fetch_add(1, std::memory_order_relaxed);
  }
}

void ClusterIpiRouter::receive(const vcpu::Ipi& ipi) {
  received_.fetch_add(1, std::memory_order_relaxed);
  local_.send_ipi(ipi);
}

}  // namespace ssi::multinode
