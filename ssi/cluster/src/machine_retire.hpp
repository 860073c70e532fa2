// One node's part of retiring a node (docs/mobility.md, "Retiring a
// node"), for the "guest" workload (machine_workload.cpp): on the node
// taking the share, pre-copy (read every page homed on the retiring node,
// as a DSM sharer, on a few threads, while the guest runs); on the retiring
// node, at the barrier, hand the DSM share over (dsm::Node::hand_over, on
// the reactor) and leave without stopping the others; on every other node,
// stop sending to the node that left. The jobs run in the background; the
// coordinator polls status().
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster/node_host.hpp"
#include "coordinator/types.hpp"
#include "dsm/node.hpp"
#include "multinode/cluster_fabric.hpp"

namespace ssi::cluster {

class NodeRetire {
 public:
  NodeRetire(NodeHost& host, dsm::Node& dsm, multinode::ClusterFabric& fabric)
      : host_(host), dsm_(dsm), fabric_(fabric) {}
  ~NodeRetire();

  // The vCPUs that moved here settle first (ClusterFabric::settle).
  Result<void> precopy(NodeId from, bool pages);
  Result<void> hand_over(NodeId to);
  Result<coord::CheckpointProgress> status();
  void node_retired(NodeId node);
  // True once this node handed its share over: a peer closing is expected.
  bool retired() const;
  bool left(NodeId peer) const { return fabric_.left(peer); }

 private:
  struct Job;
  Result<void> start(std::function<Result<std::string>()> work);
  NodeHost& host_;
  dsm::Node& dsm_;
  multinode::ClusterFabric& fabric_;
  std::shared_ptr<Job> job_;  // control thread
  std::atomic<bool> retired_{false};
  std::thread thread_;
};

}  // namespace ssi::cluster
