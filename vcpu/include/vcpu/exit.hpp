// One vCPU exit, decoded from kvm_run into plain fields so that the run loop
// and its tests never look at kvm_run (a FakeVcpu builds these by hand).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/ids.hpp"

namespace ssi::vcpu {

enum class ExitKind {
  kIo,               // port I/O (in/out, rep ins/outs)
  kMmio,             // access to guest-physical memory with no memslot
  kHlt,              // the guest executed HLT (RIP already past it)
  kShutdown,         // triple fault
  kFailEntry,        // VM entry failed (bad guest state)
  kInternalError,    // KVM could not go on, e.g. its emulator failed
  kRdmsr,            // MSR read routed to userspace (x2APIC, filtered MSRs)
  kWrmsr,            // MSR write routed to userspace
  kIrqWindowOpen,    // the guest can take an interrupt now
  kInterrupted,      // KVM_RUN returned EINTR (kick, immediate_exit, signal)
  kSystemEvent,      // KVM_EXIT_SYSTEM_EVENT
  kSetTpr,           // the guest lowered CR8 (kvm-amd without in-kernel LAPIC); see cr8
  kUnknown,          // any other exit reason (raw_reason says which)
};

inline constexpr std::size_t kExitKinds = static_cast<std::size_t>(ExitKind::kUnknown) + 1;
std::string_view exit_kind_name(ExitKind k);

// The data spans / pointers below point into the vCPU's exit buffer (the
// kvm_run page for real KVM) and stay valid until the next Vcpu::run().
// For reads the handler fills them and the next run() hands them to the guest.
struct IoExit {
  std::uint16_t port = 0;
  bool is_write = false;
  std::uint8_t size = 0;       // bytes per element: 1, 2 or 4
  std::uint32_t count = 0;     // elements (>1 for rep ins/outs)
  std::span<std::uint8_t> data;  // size * count bytes
};

struct MmioExit {
  Gpa gpa;
  bool is_write = false;
  std::span<std::uint8_t> data;  // 1..8 bytes
};

// KVM_MSR_EXIT_REASON_* values.
enum class MsrExitReason : std::uint32_t { kInval = 1, kUnknown = 2, kFilter = 4 };

struct MsrExit {
  std::uint32_t index = 0;
  MsrExitReason reason = MsrExitReason::kInval;
  std::uint64_t* data = nullptr;  // write: value written; read: fill it
  std::uint8_t* error = nullptr;  // set to 1 to inject #GP into the guest
};

struct InternalErrorExit {
  std::uint32_t suberror = 0;            // KVM_INTERNAL_ERROR_*
  std::vector<std::uint64_t> data;       // internal.data[0..ndata)
  std::vector<std::uint8_t> insn_bytes;  // for EMULATION failures, if KVM gave them
};

struct FailEntryExit {
  std::uint64_t hardware_entry_failure_reason = 0;
  std::uint32_t cpu = 0;
};

struct VcpuExit {
  ExitKind kind = ExitKind::kUnknown;
  std::uint32_t raw_reason = 0;  // KVM_EXIT_* as KVM reported it
  // Interrupt state at this exit (kvm_run out-fields).
  bool ready_for_interrupt_injection = false;
  bool if_flag = false;
  // The guest's CR8 at this exit (kvm_run->cr8, valid at every exit and at
  // EINTR): a `mov cr8` is the TPR write the userspace LAPIC must see.
  std::uint8_t cr8 = 0;

  IoExit io;                 // kIo
  MmioExit mmio;             // kMmio
  MsrExit msr;               // kRdmsr / kWrmsr
  InternalErrorExit internal;  // kInternalError
  FailEntryExit fail_entry;  // kFailEntry
  std::uint32_t system_event_type = 0;  // kSystemEvent
};

// "internal error suberror 1 (emulation), insn 66 0f ef c0": for error messages.
std::string describe(const VcpuExit& exit);

}  // namespace ssi::vcpu
