#include "multinode/ipi_router.hpp"

#include <chrono>

#include <fmt/format.h>

#include "base/log.hpp"
#include "multinode/wire.hpp"

namespace ssi::multinode {

namespace {
// CLOCK_MONOTONIC in us: comparable between the node processes of one host
// (SSI_LOG=trace shows where a cross-node IPI spends its time).
std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

namespace {
template <class P>
std::vector<NodeId> remote_nodes_of(const vcpu::Ipi& ipi, NodeId self, const P& placement) {
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
    if (n != self.value() && !placement.left(NodeId{n})) all.push_back(NodeId{n});
  return all;
}
}  // namespace

std::vector<NodeId> ClusterIpiRouter::remote_nodes(const vcpu::Ipi& ipi, NodeId self,
                                                   const Placement& placement) {
  return remote_nodes_of(ipi, self, placement);
}

std::vector<NodeId> ClusterIpiRouter::remote_nodes(const vcpu::Ipi& ipi, NodeId self,
                                                   const PlacementTable& placement) {
  return remote_nodes_of(ipi, self, placement);
}

std::uint64_t ClusterIpiRouter::merge_key(const vcpu::Ipi& ipi) {
  if (ipi.mode != vcpu::DeliveryMode::kNmi) return 0;
  // "All but self" names a different set for each source.
  std::uint64_t source = ipi.shorthand == vcpu::DestShorthand::kAllExcludingSelf
                             ? (ipi.source.value() & 0x7ffffffu)
                             : 0;
  return (std::uint64_t{1} << 63) | (std::uint64_t(ipi.shorthand) << 60) |
         (std::uint64_t(ipi.logical) << 59) | (source << 32) | ipi.destination;
}

void ClusterIpiRouter::send_ipi(const vcpu::Ipi& ipi) {
  local_.shared([&] {
    local_.deliver(ipi, self_.value());
    for (NodeId peer : remote_nodes(ipi, self_, placement_)) send_to(peer, ipi);
  });
}

void ClusterIpiRouter::send_marker(NodeId peer, const MoveMarker& m) {
  bool queued = data_.outbox().send(peer, encode_marker(m), [this, m, peer](const Error& err) {
    Error e = err;
    e.message = fmt::format("move marker for vCPU {} to node {}: {}", m.vcpu, peer.value(), e.message);
    on_error_(e);
  });
  (void)queued;  // false: the machine is exiting
}

void ClusterIpiRouter::send_to(NodeId peer, const vcpu::Ipi& ipi) {
  {
    log::get("machine")->trace("ipi {:#x} vcpu {} -> node {}: queued at {} us", ipi.vector,
                               ipi.source.value(), peer.value(), now_us());
    const std::uint32_t source = ipi.source.value();
    bool queued = data_.outbox().send(peer, encode_ipi(ipi), [this, source, peer](const Error& err) {
      Error e = err;
      e.message = fmt::format("IPI from vCPU {} to node {}: {}", source, peer.value(), e.message);
      on_error_(e);
    }, merge_key(ipi));
    if (!queued) return;  // the machine is exiting
    sent_remote_.fetch_add(1, std::memory_order_relaxed);
  }
}

void ClusterIpiRouter::receive(const vcpu::Ipi& ipi, NodeId from) {
  log::get("machine")->trace("ipi {:#x} from vcpu {}: received at {} us", ipi.vector,
                             ipi.source.value(), now_us());
  received_.fetch_add(1, std::memory_order_relaxed);
  local_.shared([&] {
    // Sent by a node that did not know yet that its target moved on.
    if (ipi.shorthand == vcpu::DestShorthand::kNone && !ipi.logical &&
        ipi.destination < placement_.vcpus()) {
      NodeId n = placement_.node_of(ipi.destination);
      if (n != self_) {
        followed_.fetch_add(1, std::memory_order_relaxed);
        send_to(n, ipi);
        return;
      }
    }
    local_.deliver(ipi, from.value());
  });
}

}  // namespace ssi::multinode
