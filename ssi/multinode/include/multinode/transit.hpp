// The IPIs of a vCPU k that moves from node A to node B (docs/mobility.md,
// "Why no IPI is lost, doubled or reordered"). Every node routes k's IPIs
// by its own placement table, and the tables change one node at a time, so
// IPIs from one source may take two paths: through A (sent before that
// node switched) and straight to B (after). Markers, sent in order with
// the IPI frames, put them back in order:
//
// - A switch: a node X != A sets "k is on B" and, under the same lock,
//   sends kLeft to A (after every IPI it sent A for k) and, if X != B,
//   kSwitched to B (before every IPI it sends B for k). B switches when k
//   arrives (immigrate), every other node when told the move is done
//   (placed); A, at placed, sends B kSwitched, then what it held.
// - Departure (on A): until placed, IPIs for k are held in order; after
//   it, forwarded to B. kLeft from X goes the same way as a kFlushed for X.
//   IPIs from a node that already switched are not k's here (that node
//   sends them to B itself) and are dropped.
// - Arrival (on B): an IPI for k from X counts only once X switched (else
//   A has it); from A it is delivered at once (A's stream is in order);
//   from any other switched X it waits until X's kFlushed, so nothing X
//   sent k earlier through A can arrive after it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <variant>
#include <vector>

#include "base/ids.hpp"
#include "multinode/ipi_router.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::multinode {

// On the node vCPU k leaves. Calls come under the local IPI router's lock:
// shared for IPIs and markers, exclusive for placed().
class Departure {
 public:
  Departure(std::uint32_t vcpu, NodeId self, ClusterIpiRouter& router)
      : vcpu_(vcpu), self_(self), router_(router) {}
  // An IPI that targets k's (parked) LAPIC, from node `origin`.
  void on_ipi(const vcpu::Ipi& ipi, NodeId origin);
  // kLeft from `origin`.
  void on_left(NodeId origin);
  // k runs on `to` now: kSwitched and what was held go there. Returns the
  // number of IPIs held.
  std::size_t placed(NodeId to);
  bool is_placed() const;
  // The move failed and k stays here (no node switched, so everything for
  // k was held here): the held IPIs go to its LAPIC, in order. Under the
  // exclusive lock. Returns the number of IPIs held.
  std::size_t cancel(vcpu::Lapic& lapic);

 private:
  // Rewritten as a physical IPI to k alone, wherever it lands.
  vcpu::Ipi only_k(const vcpu::Ipi& ipi) const;

  const std::uint32_t vcpu_;
  const NodeId self_;
  ClusterIpiRouter& router_;
  mutable std::mutex mu_;
  std::optional<NodeId> to_;
  std::set<NodeId> switched_;  // origins whose kLeft arrived (and self once placed)
  std::vector<std::variant<vcpu::Ipi, NodeId>> held_;  // NodeId: a kLeft of that origin
};

// On the node vCPU k arrives at. Thread-safe.
class Arrival {
 public:
  Arrival(std::uint32_t vcpu, NodeId from, std::uint32_t nodes)
      : vcpu_(vcpu), from_(from), nodes_(nodes) {}
  // Under the router's exclusive lock, as k's LAPIC joins this node (the
  // node's table says k is here from now on).
  void admitted(vcpu::Lapic& lapic, NodeId self);
  // An IPI that targets k's LAPIC, from node `origin` (a frame's sender;
  // this node for its own vCPUs and devices).
  void on_ipi(const vcpu::Ipi& ipi, NodeId origin, vcpu::Lapic& lapic);
  void on_marker(MoveMarker::Kind kind, NodeId origin);
  // Bounded: true once every node switched and every kFlushed arrived
  // (nothing for k is held or queued anywhere). On false the queued IPIs
  // are delivered anyway (a node that never answers must not keep them).
  bool wait_complete(std::chrono::milliseconds timeout);
  std::uint64_t queued() const;  // IPIs that waited for a kFlushed, in all

 private:
  bool complete_locked() const;
  void release_locked(NodeId origin);

  const std::uint32_t vcpu_;
  const NodeId from_;
  const std::uint32_t nodes_;
  mutable std::mutex mu_;
  std::condition_variable done_;
  vcpu::Lapic* lapic_ = nullptr;
  std::set<NodeId> switched_, flushed_;
  std::map<NodeId, std::vector<vcpu::Ipi>> waiting_;
  std::uint64_t queued_ = 0;
};

}  // namespace ssi::multinode
