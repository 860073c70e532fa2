// The fabric of one node of a multi-node machine (machine::Machine's I/O,
// IPI and exit links to the other nodes): its guest RAM is the node's DSM
// region (registered as the VM's memory slots, so guest and KVM accesses
// fault into the DSM), node 0 owns the devices and every other node
// forwards port I/O and MMIO there (the vCPU waits for the reply), IPIs go
// to the node of the target vCPU, and the first exit request anywhere stops
// every node. It builds this node's Machine and owns it.
//
// The vCPUs come from a vcpu::Vm: KVM's, or a fake one whose FakeVcpus touch
// the DSM region from their scripts, so all of this runs in tests without
// /dev/kvm. The caller owns the reactor, transport and DSM node; the fabric
// routes the transport's machine frames (kMachineFrames) to itself.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "coordinator/types.hpp"
#include "multinode/placement.hpp"
#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"
#include "ssi/machine.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::multinode {

struct ClusterNodeConfig {
  NodeId self;
  Placement placement;
  machine::MemoryMap map;    // the same on every node
  machine::KernelKind kernel = machine::KernelKind::kSsiElf;  // how APs start
  vcpu::CpuidEntries cpuid;  // filtered supported CPUID; empty = leave the vCPU's own
  int console_fd = 1;        // node 0: where COM1 goes
  std::chrono::milliseconds forward_timeout{10000};
  // Called first on each vCPU's own thread: resource controls (the node's
  // cgroup for this vCPU: shares, quota) apply to exactly that thread.
  std::function<void(std::uint32_t vcpu)> on_vcpu_thread;
  std::int64_t tsc_epoch_ns = 0;  // machine::MachineConfig::tsc_epoch_ns
  // Nodes 0..home_nodes-1 are the guest's NUMA nodes and home its RAM; the
  // others (0 = none) are standby nodes, with no vCPU at first
  // (docs/mobility.md, "Retiring a node").
  std::uint32_t home_nodes = 0;
};

// The node that owns the devices and loads the kernel.
inline constexpr NodeId kDeviceNode{0};

class ClusterFabric {
 public:
  // `ram` (map.ram_bytes() long) is this node's DSM region; it becomes the
  // memory slots of `vm`, which also creates this node's vCPUs.
  static Result<std::unique_ptr<ClusterFabric>> create(const ClusterNodeConfig& config,
                                                       std::span<std::uint8_t> ram, vcpu::Vm& vm,
                                                       rdma::Reactor& reactor,
                                                       rdma::Transport& transport);
  ~ClusterFabric();
  ClusterFabric(const ClusterFabric&) = delete;
  ClusterFabric& operator=(const ClusterFabric&) = delete;

  // This node's share of the machine: load (node 0), run, request_exit.
  machine::Machine& machine();

  // Reactor thread: route the transport's machine frames (kMachineFrames)
  // to this fabric; stop before it is destroyed.
  Result<void> start_receiving();
  void stop_receiving();

  // Reactor thread: a machine frame from a peer.
  void deliver(rdma::Frame&& frame);

  // vCPU mobility, the three steps of one move (docs/mobility.md,
  // transit.hpp), called on the control thread while the machine runs. On
  // the node it leaves: pause it at an exit, hold the IPIs for it, return
  // its state and counters (MovePayload, wire.hpp). On the node it goes
  // to: continue it from that state (on the node it left, when the move
  // failed: take it back). Then on every node: it runs on `node` now (the
  // node it left sends the IPIs it held there).
  Result<std::vector<std::uint8_t>> emigrate(std::uint32_t vcpu);
  Result<void> immigrate(std::uint32_t vcpu, std::span<const std::uint8_t> state);
  void placed(std::uint32_t vcpu, NodeId node);
  // Where every vCPU runs, as this node knows it.
  Placement placement() const;
  // Retiring a node (docs/mobility.md): on the retiring node, its exit
  // stops only itself (no exit frame to the others); on every other node,
  // `node` left: nothing is sent to it any more.
  void leave();
  // Every vCPU that moved here has its move complete (every node's markers
  // in, and every IPI the node it left held passed on), waiting at most
  // `timeout` per vCPU: then nothing for them is on its way through a node
  // about to retire.
  void settle(std::chrono::milliseconds timeout);
  void node_retired(NodeId node);
  bool left(NodeId node) const;

  // The machine's counters plus this node's forwarding and IPI counters.
  coord::Counters stats() const;

 private:
  struct Impl;
  explicit ClusterFabric(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssi::multinode
