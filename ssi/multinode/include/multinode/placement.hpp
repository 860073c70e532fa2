// Which node runs each vCPU (APIC id == vCPU index under the ssi boot
// convention), so IPIs and the boot info know where a CPU lives.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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
  bool left(NodeId) const { return false; }
};

// The placement a running machine routes by: each vCPU's node, changed by
// vCPU moves (docs/mobility.md) while vCPU threads read it. Lock-free reads.
class PlacementTable {
 public:
  explicit PlacementTable(const Placement& p)
      : nodes(p.nodes), n_(p.vcpus()), node_(std::make_unique<std::atomic<std::uint32_t>[]>(n_)) {
    for (std::uint32_t i = 0; i < n_; ++i) node_[i].store(p.vcpu_node[i]);
  }
  const std::uint32_t nodes;
  std::uint32_t vcpus() const { return n_; }
  NodeId node_of(std::uint32_t vcpu) const { return NodeId{node_[vcpu].load()}; }
  void set(std::uint32_t vcpu, NodeId node) { node_[vcpu].store(node.value()); }
  // A node that retired (docs/mobility.md): nothing is sent to it any more.
  bool left(NodeId n) const { return n.value() < 64 && (left_.load() >> n.value()) & 1; }
  void set_left(NodeId n) { left_.fetch_or(std::uint64_t{1} << n.value()); }
  Placement snapshot() const {
    Placement p;
    p.nodes = nodes;
    for (std::uint32_t i = 0; i < n_; ++i) p.vcpu_node.push_back(node_[i].load());
    return p;
  }

 private:
  std::uint32_t n_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> node_;
  std::atomic<std::uint64_t> left_{0};
};

}  // namespace ssi::multinode
