// IPIs across nodes: an ICR write is delivered to the LAPICs of this node it
// targets and sent to every other node that runs a target vCPU (one node
// for a physical destination, all of them for broadcasts, shorthands and
// logical mode; the receiver filters with the same ipi_targets rule). The
// frame goes through the node's Outbox (outbox.hpp): the sending vCPU does
// not wait for the transport, and frames to a peer leave in the order they
// were sent, so an INIT followed by a SIPI arrives in that order.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "multinode/data_path.hpp"
#include "multinode/placement.hpp"
#include "multinode/wire.hpp"
#include "ssi/board.hpp"

namespace ssi::multinode {

class ClusterIpiRouter final : public vcpu::IpiSink {
 public:
  using OnError = std::function<void(const Error&)>;
  ClusterIpiRouter(NodeId self, const PlacementTable& placement, DataPath& data,
                   machine::LocalIpiRouter& local, OnError on_error)
      : self_(self), placement_(placement), data_(data), local_(local),
        on_error_(std::move(on_error)) {}

  // Where an IPI goes and its delivery here are decided under the local
  // router's shared lock: a vCPU move (transit.hpp) changes the placement
  // and the diverts under the exclusive one.
  void send_ipi(const vcpu::Ipi& ipi) override;
  // An IPI frame from peer `from`: for this node's LAPICs, except a
  // physical IPI to a vCPU that moved away, which follows it
  // (docs/mobility.md).
  void receive(const vcpu::Ipi& ipi, NodeId from);
  // Sends `ipi` (or a move marker) to `node` only, in order with every
  // other IPI frame to it.
  void send_to(NodeId node, const vcpu::Ipi& ipi);
  void send_marker(NodeId node, const MoveMarker& marker);

  // Pure: the other nodes `ipi` must reach.
  static std::vector<NodeId> remote_nodes(const vcpu::Ipi& ipi, NodeId self,
                                          const Placement& placement);
  static std::vector<NodeId> remote_nodes(const vcpu::Ipi& ipi, NodeId self,
                                          const PlacementTable& placement);

  // Pure: the Outbox merge key of `ipi` (outbox.hpp): NMIs with the same
  // targets share one, so back-to-back unsent NMIs leave as one frame, as
  // the target's NMI latch would take them; 0 (never merged) for the rest.
  static std::uint64_t merge_key(const vcpu::Ipi& ipi);

  std::uint64_t sent_remote() const { return sent_remote_.load(); }
  std::uint64_t received() const { return received_.load(); }
  std::uint64_t followed() const { return followed_.load(); }

 private:
  NodeId self_;
  const PlacementTable& placement_;
  DataPath& data_;
  machine::LocalIpiRouter& local_;
  OnError on_error_;
  std::atomic<std::uint64_t> sent_remote_{0}, received_{0}, followed_{0};
};

}  // namespace ssi::multinode
