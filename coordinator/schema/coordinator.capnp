@0xec99c2f1b0c44a95;
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("ssi::coord::capnp_schema");
# ssi control plane: node join, machine config, phase barriers, heartbeats,
# stop, stats. The data path (DSM, I/O forwarding) never goes through here.

struct NodeInfo {
  id @0 :UInt32;
  host @1 :Text;
  version @2 :Text;              # must equal the coordinator's
  transportAddress @3 :Text;     # where peers reach this node's data path
  pid @4 :UInt32;
  capabilities @5 :List(Text);   # e.g. "kvm", "uffd", "verbs"
}

struct MachineConfig {
  nodes @0 :UInt32;
  vcpus @1 :UInt32;
  memBytes @2 :UInt64;
  transport @3 :Text;
  peers @4 :List(NodeInfo);      # index = node id
  vcpuNode @5 :List(UInt32);     # node of each vCPU
  workload @6 :Text;
  workloadArg @7 :UInt64;
  phases @8 :UInt32;             # barriers: every node finishes phase i before i+1 starts
  kernel @9 :Text;               # guest kernel file, read by node 0 ("guest" workload)
  vcpuShares @10 :List(UInt32);  # CPU weight of each vCPU's thread (empty = equal)
  vcpuQuotaPercent @11 :UInt32;  # CPU limit of each vCPU's thread, % of one CPU (0 = none)
  nodeMemLimit @12 :UInt64;      # memory limit of each node process, bytes (0 = none)
  kernelSha256 @13 :Text;        # every node checks its copy of `kernel` against this
  initrd @14 :Text;              # Linux initrd / multiboot module file, read by node 0 (optional)
  append @15 :Text;              # kernel command line (Linux, multiboot)
  initrdSha256 @16 :Text;        # node 0 checks its copy of `initrd` against this
  tscEpochNs @17 :Int64;         # guest TSC zero, CLOCK_REALTIME ns, the same on every node
  restoreDir @18 :Text;          # non-empty: continue the checkpoint there instead of booting `kernel`
  checkpointOn @19 :Text;        # node 0: report (sample counter checkpoint_console_matched) a console line containing it
  standby @20 :UInt32;           # the last `standby` of the `nodes` start with no vCPUs and no homes
}

struct VcpuState {
  vcpu @0 :UInt32;
  state @1 :Data;                # vcpu::serialize
}

struct Counter {
  name @0 :Text;
  value @1 :UInt64;
}

struct PhaseResult {
  exitCode @0 :Int32;
  message @1 :Text;
  stats @2 :List(Counter);
  guestExit @3 :Bool;  # exitCode is the guest's own (it ended the machine), not a failure
}

# Served by every node; the coordinator calls it.
interface Node {
  configure @0 (config :MachineConfig) -> (ok :Bool, error :Text);
  runPhase @1 (phase :UInt32) -> ();          # returns at once; node reports with finished()
  stop @2 (reason :Text, failed :Bool) -> ();
  ping @3 () -> ();
  moveVcpu @4 (vcpu :UInt32, toNode :UInt32) -> (ok :Bool, error :Text);  # unused: see emigrate
  # One vCPU move, ordered by the coordinator: the node the vCPU leaves
  # pauses it and returns its state (empty + error on failure), the node it
  # goes to continues it, then every node learns where it runs.
  emigrate @6 (vcpu :UInt32) -> (state :Data, error :Text);
  immigrate @7 (vcpu :UInt32, state :Data) -> (ok :Bool, error :Text);
  placed @8 (vcpu :UInt32, node :UInt32) -> ();
  sample @5 () -> (stats :List(Counter));    # live counters while a phase runs (metrics)
  # A checkpoint of the whole machine (docs/checkpoint.md), ordered by the
  # coordinator: every node pauses its vCPUs (a barrier), then returns
  # their states; node 0 writes the checkpoint in the background
  # (checkpointWritten polls it); then every node resumes or stops.
  checkpointPause @9 (timeoutMs :UInt32) -> (error :Text);
  checkpointSave @10 () -> (states :List(VcpuState), error :Text);
  checkpointWrite @11 (dir :Text, states :List(VcpuState), nodes :UInt32) -> (error :Text);
  checkpointWritten @12 () -> (done :Bool, summary :Text, error :Text);
  checkpointResume @13 (stop :Bool) -> ();
  # Retiring a node (docs/mobility.md, "Retiring a node"), ordered by the
  # coordinator: the node taking the share pre-copies the retiring node's
  # pages (retirePrecopy, polled with retireStatus); at the checkpoint
  # barrier the retiring node hands its share over (retireHandover, polled
  # with retireStatus), every other node learns it left (nodeRetired).
  retirePrecopy @14 (fromNode :UInt32, pages :Bool) -> (error :Text);  # pages false: only settle the moves
  retireHandover @15 (toNode :UInt32) -> (error :Text);
  retireStatus @16 () -> (done :Bool, summary :Text, error :Text);
  nodeRetired @17 (node :UInt32, toNode :UInt32) -> ();
}

# Served by the coordinator.
interface Coordinator {
  join @0 (info :NodeInfo, node :Node) -> (ok :Bool, error :Text);
  finished @1 (id :UInt32, phase :UInt32, result :PhaseResult) -> ();
  ping @2 () -> ();
}
