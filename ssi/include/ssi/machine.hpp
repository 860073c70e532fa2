// The ssi machine, one class for one node and for N. A node's Machine owns
// its vCPUs (one userspace LAPIC and one run-loop thread each), and on the
// device node (node 0) the board: COM1, debug-exit ports, IOAPIC, PICs,
// fw_cfg. It is parameterised by
//   - its RAM backend: anonymous memory (one node) or the node's DSM region;
//   - its fabric: where I/O the board does not own here goes (nowhere on the
//     device node; a forwarder to node 0 elsewhere), where IPIs go (the
//     LAPICs of this node, or a router that also reaches the other nodes),
//     and the exit request every node shares.
// One node is the degenerate cluster: the same code with a local fabric.
// The multi-node fabric lives in ssi/multinode (cluster_fabric.hpp).
// docs/machine.md describes the whole.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/result.hpp"
#include "base/ids.hpp"
#include "ssi/board.hpp"
#include "ssi/kernel_image.hpp"
#include "ssi/memory_map.hpp"
#include "vcpu/cpu_state.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::machine {

// Exit code when a vCPU fails (the Error carries the reason).
inline constexpr int kVcpuFailed = 1;

struct MachineConfig {
  std::uint32_t vcpus = 1;  // of the whole machine
  MemoryMap map{};          // the same on every node
  NodeId self{0};
  std::uint32_t nodes = 1;   // the guest's NUMA nodes
  std::uint32_t standby = 0;  // node processes after them, with no vCPU and no RAM at first
  std::vector<std::uint32_t> vcpu_node{};  // node of each vCPU; empty = all on node 0
  // Start of each node's share of guest RAM (the DSM's homes), told to ssi
  // test kernels in their boot info; empty = one node.
  std::vector<std::uint64_t> node_ram_start{};
  // How APs start on SIPI: ssi test kernels enter long mode directly
  // (boot_info.h); multiboot and Linux kernels start in real mode.
  KernelKind kernel = KernelKind::kSsiElf;
  vcpu::CpuidEntries cpuid{};  // filtered supported CPUID; empty = leave the vCPU's own
  int console_fd = 1;        // device node: where COM1 goes
  // Called first on each vCPU's own thread (e.g. to enter its cgroup).
  std::function<void(std::uint32_t vcpu)> on_vcpu_thread{};
  // Machine-wide TSC epoch (CLOCK_REALTIME ns; 0 = leave KVM's own, which
  // agrees only between vCPUs of one VM): every vCPU starts with the cycles
  // since it, so the TSCs of vCPUs on different nodes agree.
  std::int64_t tsc_epoch_ns = 0;
};

// What differs between one node and N (all pointers: owned by the caller,
// outliving the Machine). Every field empty = one node, alone.
struct MachineFabric {
  std::span<std::uint8_t> ram{};        // map.ram_bytes(): anonymous memory or the DSM region
  vcpu::ExitRequest* exit = nullptr;    // shared with the fabric; null = the machine's own
  LocalIpiRouter* local_ipis = nullptr; // this node's LAPICs; null = the machine's own
  vcpu::IpiSink* ipis = nullptr;        // where LAPICs and the IOAPIC send; null = local_ipis
  vcpu::IoHandler* remote_io = nullptr; // non-null: devices live on another node, go there
  // With remote_io: where this node's LAPICs send level-triggered EOIs (to
  // the IOAPIC on the device node, which clears remote IRR).
  std::function<void(std::uint8_t vector)> remote_eoi{};
};

using Counters = std::vector<std::pair<std::string, std::uint64_t>>;

class Machine {
 public:
  // One node: anonymous RAM, a VM from `hv`, supported CPUID filtered.
  static Result<std::unique_ptr<Machine>> create(vcpu::Hypervisor& hv, const MachineConfig& config);
  // Any node: `vm` (outliving the Machine) gets `fabric.ram` as its memory
  // slots and this node's vCPUs.
  static Result<std::unique_ptr<Machine>> create(vcpu::Vm& vm, const MachineConfig& config,
                                                 const MachineFabric& fabric);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  // Device node, before any node runs: loads `kernel` and its boot data
  // (boot area, or ACPI/multiboot/boot_params) into guest RAM and puts the
  // BSP in its start state. `kernel` may be null (scripted guests): the
  // boot area alone is written.
  Result<void> load(const KernelImage* kernel);

  // Runs this node's vCPUs until the machine exits; returns the exit code
  // (the guest's debug-exit code, kVcpuFailed, or a request_exit code).
  // Errors name the vCPU that failed here.
  Result<int> run();
  // vCPU mobility (docs/mobility.md), thread-safe, while run() runs or
  // before. emigrate: this node's `vcpu` stops at its next exit (within
  // `timeout`), IPIs its LAPIC would take go to `divert` from then on, and
  // its whole state is returned; its thread ends (its LAPIC stays diverted
  // until a later divert replaces that). immigrate: `vcpu` (not on this
  // node) continues here from `state`; its LAPIC's IPIs go to `gate`, which
  // is installed (and `admitted` run, with that LAPIC, under the same
  // router lock) before the vCPU runs. Per-vCPU counters follow it: pass
  // vcpu_stats() of the node it left as `carried`.
  Result<vcpu::CpuState> emigrate(std::uint32_t vcpu, LocalIpiRouter::Divert divert,
                                  std::chrono::milliseconds timeout);
  Result<void> immigrate(std::uint32_t vcpu, const vcpu::CpuState& state,
                         LocalIpiRouter::Divert gate,
                         const std::function<void(vcpu::Lapic&)>& admitted, Counters carried = {});
  // One vCPU's counters (the "vcpu<N>.*" of stats(), without the prefix),
  // counted since the machine started on every node it ran on; for one that
  // left this node, as it left.
  Counters vcpu_stats(std::uint32_t vcpu) const;

  // Thread-safe: stop every vCPU; run() returns `code` (first request wins).
  void request_exit(int code);

  // Device node: the board (tests may add a device before run()); else null.
  Board* board();
  // Per-node counters (vCPU exits, interrupts, halts; per vCPU "vcpu<N>.*").
  Counters stats() const;
  // The vCPUs' TSC rate in kHz (the guest_tsc_khz counter); 0 until known.
  std::uint64_t tsc_khz() const;

  // Checkpoint (ssi/checkpoint.hpp, docs/checkpoint.md). pause_vcpus():
  // every vCPU of this node parked at an exit (false if one did not within
  // `timeout`); while paused, save_vcpus() / save_devices() (device node:
  // board and fw_cfg) and ram() are a consistent picture of this node.
  // request_pause() only asks (any thread, a vCPU's own included): each
  // vCPU parks at its next exit, before it runs more guest code.
  void request_pause();
  bool pause_vcpus(std::chrono::milliseconds timeout);
  void resume_vcpus();
  Result<std::vector<std::pair<std::uint32_t, vcpu::CpuState>>> save_vcpus();
  Result<std::vector<std::uint8_t>> save_devices();
  // Before run(), instead of load(): vCPU `index` (one of this node's)
  // continues from `state`; the devices from save_devices()' bytes.
  Result<void> restore_vcpu(std::uint32_t index, const vcpu::CpuState& state);
  Result<void> restore_devices(std::span<const std::uint8_t> bytes);
  std::span<std::uint8_t> ram();

 private:
  struct Impl;
  explicit Machine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Runs `machine` like `run()`, but SIGINT / SIGTERM stop it cleanly with
// exit code 128 + signal (console flushed, vCPU threads joined). The caller
// must have blocked both signals (block_stop_signals) before creating the
// machine, so every thread it starts inherits the mask.
Result<int> run_until_exit(Machine& machine);

// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts
// afterwards) for its lifetime; restores the old mask on destruction.
class StopSignalBlock {
 public:
  StopSignalBlock();
  ~StopSignalBlock();
  StopSignalBlock(const StopSignalBlock&) = delete;
  StopSignalBlock& operator=(const StopSignalBlock&) = delete;

 private:
  sigset_t old_;
};

}  // namespace ssi::machine
