// A single-node ssi machine: guest RAM, the loaded test kernel and boot
// structures, devices (COM1, debug-exit ports), one userspace LAPIC and one
// run-loop thread per vCPU, IPIs routed between the LAPICs of this node.
// Multi-node runs will replace the RAM with the DSM region and route IPIs and
// device I/O over the transport; the pieces here stay the same.
#pragma once

#include <signal.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "base/result.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/kernel_boot.hpp"
#include "ssi/memory_map.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::machine {

struct MachineConfig {
  std::uint32_t vcpus = 1;
  MemoryMap map;
  std::span<const std::uint8_t> kernel_file;  // must outlive create()
  ElfImage kernel;                            // parse_elf(kernel_file, map)
  int console_fd = 1;                         // COM1 output
  // Set for Linux / multiboot kernels (kernel_boot.hpp): loads the kernel
  // into guest RAM instead of the ELF test-kernel path; APs then start in
  // real mode through INIT + SIPI.
  std::function<Result<BootPlan>(const GuestRam&)> load_foreign{};
};

class Machine {
 public:
  // Builds everything (memory, boot area, vCPUs in their start state).
  static Result<std::unique_ptr<Machine>> create(vcpu::Hypervisor& hv, const MachineConfig& config);
  virtual ~Machine() = default;

  // Runs every vCPU until the guest writes a debug-exit port (its code is
  // returned) or a vCPU fails (the error names the vCPU; the others stop).
  virtual Result<int> run() = 0;
  // Thread-safe: stop every vCPU; run() returns `code` (unless the guest exited first).
  virtual void request_exit(int code) = 0;
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
