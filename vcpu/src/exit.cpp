#include "vcpu/exit.hpp"

#include <fmt/format.h>

namespace ssi::vcpu {

std::string_view exit_kind_name(ExitKind k) {
  switch (k) {
    case ExitKind::kIo: return "io";
    case ExitKind::kMmio: return "mmio";
    case ExitKind::kHlt: return "hlt";
    case ExitKind::kShutdown: return "shutdown";
    case ExitKind::kFailEntry: return "fail_entry";
    case ExitKind::kInternalError: return "internal_error";
    case ExitKind::kRdmsr: return "rdmsr";
    case ExitKind::kWrmsr: return "wrmsr";
    case ExitKind::kIrqWindowOpen: return "irq_window_open";
    case ExitKind::kInterrupted: return "interrupted";
    case ExitKind::kSystemEvent: return "system_event";
    case ExitKind::kSetTpr: return "set_tpr";
    case ExitKind::kUnknown: return "unknown";
  }
  return "?";
}

static std::string_view internal_suberror_name(std::uint32_t s) {
  switch (s) {
    case 1: return "emulation";
    case 2: return "simultaneous exceptions";
    case 3: return "delivery event";
    case 4: return "unexpected exit reason";
    default: return "unknown";
  }
}

std::string describe(const VcpuExit& exit) {
  switch (exit.kind) {
    case ExitKind::kInternalError: {
      std::string s = fmt::format("KVM internal error, suberror {} ({})", exit.internal.suberror,
                                  internal_suberror_name(exit.internal.suberror));
      if (!exit.internal.insn_bytes.empty()) {
        s += ", instruction bytes";
        for (auto b : exit.internal.insn_bytes) s += fmt::format(" {:02x}", b);
        s += " (this KVM's emulator cannot execute it; see docs/vcpu.md, KVM fact #7)";
      }
      for (std::size_t i = 0; i < exit.internal.data.size(); ++i)
        s += fmt::format("{}{:#x}", i == 0 ? ", data " : " ", exit.internal.data[i]);
      return s;
    }
    case ExitKind::kFailEntry:
      return fmt::format("VM entry failed: hardware reason {:#x} on cpu {}",
                         exit.fail_entry.hardware_entry_failure_reason, exit.fail_entry.cpu);
    case ExitKind::kShutdown:
      return "guest shutdown (triple fault)";
    case ExitKind::kIo:
      return fmt::format("io {} port {:#x} size {} count {}", exit.io.is_write ? "out" : "in",
                         exit.io.port, exit.io.size, exit.io.count);
    case ExitKind::kMmio:
      return fmt::format("mmio {} gpa {:#x} len {}", exit.mmio.is_write ? "write" : "read",
                         exit.mmio.gpa.value(), exit.mmio.data.size());
    case ExitKind::kRdmsr:
    case ExitKind::kWrmsr:
      return fmt::format("{} index {:#x} reason {}", exit_kind_name(exit.kind), exit.msr.index,
                         static_cast<std::uint32_t>(exit.msr.reason));
    case ExitKind::kSystemEvent:
      return fmt::format("system event type {}", exit.system_event_type);
    case ExitKind::kUnknown:
      return fmt::format("unhandled exit reason {}", exit.raw_reason);
    default:
      return std::string(exit_kind_name(exit.kind));
  }
}

}  // namespace ssi::vcpu
