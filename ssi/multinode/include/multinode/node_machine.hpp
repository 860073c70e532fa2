// One node's share of a multi-node machine (DESIGN.md 1, 6): its guest RAM
// is the node's DSM region (registered as the VM's memory slots, so guest and
// KVM accesses fault into the DSM), it runs the vCPUs placed on it, node 0
// owns the devices and every other node forwards port I/O and MMIO there
// (the vCPU waits for the reply), IPIs go to the node of the target vCPU,
// and the first exit request anywhere stops every node.
//
// The vCPUs come from a vcpu::Vm: KVM's, or a fake one whose FakeVcpus touch
// the DSM region from their scripts, so all of this runs in tests without
// /dev/kvm. The caller owns the reactor, transport and DSM node, and routes
// received frames with is_machine_frame() to deliver().
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>

#include "coordinator/types.hpp"
#include "multinode/placement.hpp"
#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"
#include "ssi/board.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/memory_map.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::multinode {

struct NodeMachineConfig {
  NodeId self;
  Placement placement;
  machine::MemoryMap map;    // the same on every node
  vcpu::CpuidEntries cpuid;  // filtered supported CPUID; empty = leave the vCPU's own
  int console_fd = 1;        // node 0: where COM1 goes
  std::chrono::milliseconds forward_timeout{10000};
  // Called first on each vCPU's own thread: resource controls (the node's
  // cgroup for this vCPU: shares, quota) apply to exactly that thread.
  std::function<void(std::uint32_t vcpu)> on_vcpu_thread;
};

// Exit code of a node whose vCPU failed (the guest's codes come from its
// debug-exit port).
inline constexpr int kVcpuFailed = 1;

class NodeMachine {
 public:
  // `ram` (map.ram_bytes() long) is this node's DSM region; it becomes the
  // memory slots of `vm`, which also creates this node's vCPUs.
  static Result<std::unique_ptr<NodeMachine>> create(const NodeMachineConfig& config,
                                                     std::span<std::uint8_t> ram, vcpu::Vm& vm,
                                                     rdma::Reactor& reactor,
                                                     rdma::Transport& transport);
  ~NodeMachine();
  NodeMachine(const NodeMachine&) = delete;
  NodeMachine& operator=(const NodeMachine&) = delete;

  // Node 0, before any node runs: loads the kernel (if any) and writes the
  // boot area (page tables, GDT, boot info with each CPU's node) into guest
  // RAM through the DSM; the BSP then starts at the kernel entry.
  Result<void> load(std::span<const std::uint8_t> kernel_file, const machine::ElfImage* kernel);

  // Reactor thread: a frame with is_machine_frame(type) from a peer.
  void deliver(rdma::Frame&& frame);

  // Runs this node's vCPUs until the machine exits anywhere; returns the
  // exit code (the guest's, or kVcpuFailed, or a request_exit code). Errors
  // name the vCPU that failed here.
  Result<int> run();
  // Thread-safe: stop every vCPU of every node with `code` (first one wins).
  void request_exit(int code);

  // Node 0: its devices (tests may add one before run()); nullptr elsewhere.
  machine::Board* board();
  // Per-node counters for the coordinator's stats table.
  coord::Counters stats() const;

 private:
  struct Impl;
  explicit NodeMachine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssi::multinode
