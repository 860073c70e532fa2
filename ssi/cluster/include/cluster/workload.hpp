// What a node runs once the machine is configured: a guest, or a
// host-level workload (transport ping, DSM demo). One phase at a time;
// the coordinator puts a cluster-wide barrier between phases.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/node_host.hpp"
#include "coordinator/types.hpp"

namespace ssi::cluster {

class Workload {
 public:
  virtual ~Workload() = default;
  // Blocking; runs on a worker thread (not the reactor thread).
  virtual coord::PhaseResult run_phase(std::uint32_t phase) = 0;
  // Makes run_phase return soon (the machine stops). Must not free memory
  // a running run_phase may still touch: that happens in the destructor,
  // after the worker thread is joined.
  virtual void stop() {}
  // After stop(), when the machine stops because of a failure (a node lost,
  // found by the coordinator): nothing may keep waiting on the lost node. A
  // workload on the DSM fails its faults (dsm::Node::fail) so that its
  // threads are released; the transport's peer-down report does the same
  // when the lost node's connection closes.
  virtual void fail(const std::string& why) { (void)why; }
  // Counters right now, for live metrics; called on the control thread
  // while run_phase may be running (read only atomics / locked state).
  virtual coord::Counters sample() const { return {}; }
  // vCPU mobility (coord::NodeRuntime's, docs/mobility.md); only "guest".
  virtual Result<std::vector<std::uint8_t>> emigrate(std::uint32_t vcpu) {
    (void)vcpu;
    return make_error(Errc::kUnsupported, "this workload has no vCPUs to move");
  }
  virtual Result<void> immigrate(std::uint32_t vcpu, std::span<const std::uint8_t> state) {
    (void)vcpu, (void)state;
    return make_error(Errc::kUnsupported, "this workload has no vCPUs to move");
  }
  virtual void placed(std::uint32_t vcpu, NodeId node) { (void)vcpu, (void)node; }
  // Whole-machine checkpoint (coord::NodeRuntime's, docs/checkpoint.md); only "guest".
  virtual Result<void> checkpoint_pause(std::chrono::milliseconds timeout) {
    (void)timeout;
    return make_error(Errc::kUnsupported, "this workload has no machine to checkpoint");
  }
  virtual Result<std::vector<coord::VcpuBytes>> checkpoint_save() {
    return make_error(Errc::kUnsupported, "this workload has no machine to checkpoint");
  }
  virtual Result<void> checkpoint_write(const std::string& dir, std::vector<coord::VcpuBytes> states,
                                        std::uint32_t nodes) {
    (void)dir, (void)states, (void)nodes;
    return make_error(Errc::kUnsupported, "this workload has no machine to checkpoint");
  }
  virtual Result<coord::CheckpointProgress> checkpoint_written() {
    return make_error(Errc::kUnsupported, "this workload has no machine to checkpoint");
  }
  virtual void checkpoint_resume(bool stop) { (void)stop; }
  // Retiring a node (coord::NodeRuntime's, docs/mobility.md); only "guest".
  virtual Result<void> retire_precopy(NodeId, bool) {
    return make_error(Errc::kUnsupported, "this workload cannot retire a node");
  }
  virtual Result<void> retire_hand_over(NodeId) {
    return make_error(Errc::kUnsupported, "this workload cannot retire a node");
  }
  virtual Result<coord::CheckpointProgress> retire_status() {
    return make_error(Errc::kUnsupported, "this workload cannot retire a node");
  }
  virtual void node_retired(NodeId, NodeId) {}
};

// Known names: "ping" (rpc round trips to every peer), "dsm-demo", "guest"
// (a KVM guest across the nodes: `ssi run --nodes N`), "machine-demo" (the
// launcher runs it as "guest" where KVM and a kernel are there, else as
// "dsm-demo": src/machine_demo.cpp), and the
// interconnect lab's host-level DSM workloads "lab-*" (docs/benchmarking.md),
// "vcpu-spin" (busy threads in the vCPUs' cgroups: shares and metrics).
const std::vector<std::string>& workload_names();

Result<std::unique_ptr<Workload>> make_workload(NodeHost& host, const coord::MachineConfig& config);

// Phases each workload needs (the coordinator's barrier count).
std::uint32_t workload_phases(const std::string& name);

// The config as it will run: phases, and every size left at 0 (rounds,
// memory; machine-demo's vCPUs) set to the workload's default, so that
// every node and the --json file see the same explicit values.
coord::MachineConfig with_defaults(coord::MachineConfig config);

}  // namespace ssi::cluster
