// Plain C++ values exchanged over the control plane (the Cap'n Proto
// schema in schema/coordinator.capnp mirrors them), and the interface a
// node process implements to be driven by the coordinator.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::coord {

struct NodeInfo {
  NodeId id;
  std::string host;
  std::string version;
  std::string transport_address;
  std::uint32_t pid = 0;
  std::vector<std::string> capabilities;
};

struct MachineConfig {
  std::uint32_t nodes = 1;
  std::uint32_t vcpus = 1;
  std::uint64_t mem_bytes = 0;
  std::string transport = "tcp";
  std::vector<NodeInfo> peers;          // index = node id (filled by the coordinator)
  std::vector<std::uint32_t> vcpu_node;  // node of each vCPU
  // `--placement auto`: the launcher moves vCPUs to the node serving most
  // of their DSM requests (cluster/placement_policy.hpp); not sent to nodes.
  bool placement_auto = false;
  std::string workload;
  std::uint64_t workload_arg = 0;
  std::uint32_t phases = 1;
  std::string kernel;  // guest kernel file ("guest" workload; node 0 reads it)
  // Resource controls (the node's cgroup): CPU weight per vCPU (empty =
  // equal), CPU limit per vCPU in % of one CPU (0 = none), memory limit
  // per node process in bytes (0 = none).
  std::vector<std::uint32_t> vcpu_shares;
  std::uint32_t vcpu_quota_percent = 0;
  std::uint64_t node_mem_limit = 0;
  std::string kernel_sha256;  // hex; non-empty: every node checks its copy of `kernel`
  std::string initrd;         // Linux initrd / multiboot module ("guest"; node 0 reads it)
  std::string append;         // kernel command line (Linux, multiboot)
  std::string initrd_sha256;  // hex; non-empty: node 0 checks its copy of `initrd`
  // The guest TSC's zero (CLOCK_REALTIME ns), the same for every node; the
  // coordinator sets it when it configures the nodes if it is 0.
  std::int64_t tsc_epoch_ns = 0;
  // "guest": continue the checkpoint in this directory (docs/checkpoint.md)
  // instead of booting `kernel` (then empty).
  std::string restore_dir;
  // Node 0: a console line containing this sets its live counter
  // checkpoint_console_matched (the launcher then orders a checkpoint).
  std::string checkpoint_on;
  // The last `standby` of the `nodes` node processes start with no vCPU and
  // home no page (the guest's NUMA topology has nodes - standby nodes); one
  // takes a retiring node's share (docs/mobility.md, "Retiring a node").
  std::uint32_t standby = 0;
  std::uint32_t home_nodes() const { return nodes - standby; }
};

// One vCPU's serialised state (vcpu::serialize), as a checkpoint carries it.
struct VcpuBytes {
  std::uint32_t vcpu = 0;
  std::vector<std::uint8_t> state;
};

// Node 0's answer while it writes a checkpoint: not done yet, or done with
// a one-line JSON summary (or an error).
struct CheckpointProgress {
  bool done = false;
  std::string summary;
};

using Counters = std::vector<std::pair<std::string, std::uint64_t>>;

struct PhaseResult {
  int exit_code = 0;
  std::string message;
  Counters stats;
  // exit_code is what the guest asked for (debug-exit port): the machine
  // ended normally and passes it on; not a failure of this node.
  bool guest_exit = false;
};

// What the coordinator drives in each node process (the machine, the
// host-level DSM demo, or a fake in tests). Called on the control thread.
class NodeRuntime {
 public:
  using Done = std::function<void(PhaseResult)>;
  virtual ~NodeRuntime() = default;
  // Connect the data path to the peers etc. Called once, before any phase.
  virtual Result<void> configure(const MachineConfig& config) = 0;
  // Start phase `phase`; call `done` (from any thread, exactly once) when
  // this node has finished it. Phase i+1 starts only after every node
  // finished phase i: a cluster-wide barrier.
  virtual void run_phase(std::uint32_t phase, Done done) = 0;
  // Stop everything (machine finished, a peer died, Ctrl-C).
  virtual void stop(const std::string& reason, bool failed) = 0;
  // The node's counters right now (the coordinator samples them
  // periodically for live metrics); may run while a phase runs.
  virtual Counters sample() { return {}; }
  // vCPU mobility, the three steps of one move the coordinator orders
  // (docs/mobility.md): the node it leaves pauses it and returns its
  // serialised state; the node it goes to continues it; then every node
  // learns where it runs now.
  virtual Result<std::vector<std::uint8_t>> emigrate(VcpuId) {
    return make_error(Errc::kUnsupported, "this node cannot move vCPUs");
  }
  virtual Result<void> immigrate(VcpuId, std::span<const std::uint8_t>) {
    return make_error(Errc::kUnsupported, "this node cannot move vCPUs");
  }
  virtual void placed(VcpuId, NodeId) {}
  // Whole-machine checkpoint (docs/checkpoint.md), ordered by the
  // coordinator: pause every vCPU of this node (within `timeout`); the
  // states of this node's vCPUs; node 0: write the checkpoint (RAM read
  // through the DSM, devices, `states` of every node) in the background,
  // checkpoint_written() says when; then resume, or stop the machine.
  virtual Result<void> checkpoint_pause(std::chrono::milliseconds) {
    return make_error(Errc::kUnsupported, "this node has no machine to checkpoint");
  }
  virtual Result<std::vector<VcpuBytes>> checkpoint_save() {
    return make_error(Errc::kUnsupported, "this node has no machine to checkpoint");
  }
  virtual Result<void> checkpoint_write(const std::string&, std::vector<VcpuBytes>, std::uint32_t) {
    return make_error(Errc::kUnsupported, "this node has no machine to checkpoint");
  }
  virtual Result<CheckpointProgress> checkpoint_written() {
    return make_error(Errc::kUnsupported, "this node has no machine to checkpoint");
  }
  virtual void checkpoint_resume(bool stop) { (void)stop; }
  // Retiring a node (docs/mobility.md): on the node taking the share, wait
  // until the vCPUs that moved there are settled and (`pages`) read every
  // page homed on `from`, in the background; on the retiring node, at
  // the barrier, hand the share to `to` in the background; retire_status()
  // says when either is done (summary: JSON fields). node_retired(): every
  // other node, at the barrier: `node` left, `to` has its share.
  virtual Result<void> retire_precopy(NodeId, bool) {
    return make_error(Errc::kUnsupported, "this node cannot retire");
  }
  virtual Result<void> retire_hand_over(NodeId) {
    return make_error(Errc::kUnsupported, "this node cannot retire");
  }
  virtual Result<CheckpointProgress> retire_status() {
    return make_error(Errc::kUnsupported, "this node cannot retire");
  }
  virtual void node_retired(NodeId, NodeId) {}
};

struct Timing {
  std::chrono::milliseconds heartbeat{250};
  // The failure detectors' floor: no heartbeat for this long = dead; a peer
  // whose heartbeats were irregular gets longer (failure_detector.hpp).
  std::chrono::milliseconds failure_timeout{4000};
  std::chrono::milliseconds join_timeout{30000};
  // How long a phase (a guest's whole run, for a machine) may take; 0 = no
  // limit. Liveness is the heartbeats' job: a guest may run for days.
  std::chrono::milliseconds phase_timeout{0};
};

}  // namespace ssi::coord
