// One node's part of a whole-machine checkpoint and restore
// (docs/checkpoint.md), for the "guest" workload (machine_workload.cpp):
// pause / save this node's vCPUs; on node 0, write the checkpoint in the
// background (RAM read through the node's DSM mapping after every node
// paused, its devices, every node's vCPU states); resume or stop. And the
// restore: node 0 loads RAM and devices, every node its placed vCPUs.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/types.hpp"
#include "multinode/cluster_fabric.hpp"
#include "ssi/checkpoint.hpp"

namespace ssi::cluster {

class NodeCheckpoint {
 public:
  // `config`: the machine as the manifest describes it (nodes, tsc_khz are
  // filled in when it is written).
  NodeCheckpoint(multinode::ClusterFabric& fabric, machine::CheckpointConfig config)
      : fabric_(fabric), config_(config) {}
  ~NodeCheckpoint();

  Result<void> pause(std::chrono::milliseconds timeout);
  Result<std::vector<coord::VcpuBytes>> save();
  Result<void> write(const std::string& dir, std::vector<coord::VcpuBytes> states, std::uint32_t nodes);
  Result<coord::CheckpointProgress> written();
  void resume(bool stop);
  // A console line contained the --checkpoint-on text (node 0).
  void console_matched() { matched_.store(1); }
  std::uint64_t matched() const { return matched_.load(); }

 private:
  multinode::ClusterFabric& fabric_;
  machine::CheckpointConfig config_;
  std::atomic<std::uint64_t> matched_{0};
  std::mutex mu_;
  std::thread writer_;
  bool writing_ = false;
  std::optional<Result<std::string>> outcome_;  // under mu_: the writer's result
};

// Phase 0 of a restored machine: node 0 copies RAM into its DSM region
// (like a kernel load) and restores the devices; every node restores the
// vCPUs the placement gives it.
Result<void> restore_node(multinode::ClusterFabric& fabric, const machine::Checkpoint& c, NodeId self,
                          const std::vector<std::uint32_t>& vcpus);

}  // namespace ssi::cluster
