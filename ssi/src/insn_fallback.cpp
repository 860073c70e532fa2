#include "ssi/insn_fallback.hpp"

#include <fmt/format.h>
#include "vcpu/kvm_abi.hpp"

namespace ssi::machine {

namespace {

constexpr std::uint8_t kBpVector = 3;
constexpr std::uint16_t kFswExceptionSummary = 1u << 7;
constexpr std::uint16_t kX87ExceptionBits = 0x3F;  // IE DE ZE OE UE PE (status and mask)

Error stop(std::string line) { return make_error(Errc::kUnsupported, std::move(line)); }

}  // namespace

InsnDecision decide_unsupported(std::span<const std::uint8_t> bytes, std::uint16_t fsw,
                                std::uint16_t fcw) {
  if (bytes.empty()) return {InsnAction::kStop, 0, "KVM reported no instruction bytes"};
  if (bytes[0] == 0xCC) return {InsnAction::kInjectBreakpoint, 1, {}};
  if (bytes.size() >= 2 && bytes[0] == 0xCD && bytes[1] == kBpVector) {
    return {InsnAction::kInjectBreakpoint, 2, {}};
  }
  if (bytes.size() >= 2 && bytes[0] == 0xCD) {
    return {InsnAction::kSoftwareInterrupt, 2, {}, bytes[1]};
  }
  if (bytes[0] == 0x9B) {
    const bool pending = (fsw & kFswExceptionSummary) ||
                         ((fsw & kX87ExceptionBits) & ~(fcw & kX87ExceptionBits)) != 0;
    if (pending) {
      return {InsnAction::kStop, 0,
              fmt::format("fwait with a pending x87 exception (fsw {:#06x}) is not emulated", fsw)};
    }
    return {InsnAction::kSkip, 1, {}};
  }
  return {InsnAction::kStop, 0, "not emulated by KVM here nor by ssi"};
}

std::string unsupported_line(std::uint64_t rip, std::span<const std::uint8_t> bytes,
                             const std::string& reason) {
  std::string hex;
  for (std::uint8_t b : bytes) hex += fmt::format("{}{:02x}", hex.empty() ? "" : " ", b);
  return fmt::format("unsupported instruction at rip {:#x}: {} ({})", rip, hex.empty() ? "??" : hex,
                     reason);
}

namespace {

// `int $n` delivers vector n through the IDT with the RIP after the
// instruction on the stack and no error code, whatever n is. An injected
// *external* interrupt (KVM_SET_VCPU_EVENTS, interrupt.injected) with the
// RIP already advanced has exactly that effect, ignoring IF like `int`
// does, on VMX and SVM alike. The one difference is the gate-DPL check
// (#GP if DPL < CPL), which cannot fail at CPL 0; above CPL 0 ssi would have
// to read the IDT itself, so it stops there instead of guessing.
Result<void> deliver_software_interrupt(vcpu::Vcpu& v, kvm_regs regs, std::uint8_t vector,
                                        std::uint8_t length,
                                        std::span<const std::uint8_t> bytes) {
  SSI_ASSIGN_OR_RETURN(kvm_sregs sregs, v.get_sregs());
  const bool protected_mode = sregs.cr0 & 1;
  if (protected_mode && sregs.cs.dpl != 0) {
    return stop(unsupported_line(
        regs.rip, bytes, fmt::format("int ${:#x} at CPL {} is not emulated", vector, sregs.cs.dpl)));
  }
  SSI_ASSIGN_OR_RETURN(kvm_vcpu_events ev, v.get_events());
  if (ev.interrupt.injected || ev.exception.injected) {
    return stop(unsupported_line(regs.rip, bytes, "another event is already being delivered"));
  }
  regs.rip += length;
  SSI_TRY(v.set_regs(regs));
  ev.interrupt.injected = 1;
  ev.interrupt.nr = vector;
  ev.interrupt.soft = 0;
  return v.set_events(ev);
}

}  // namespace

Result<void> handle_internal_error(vcpu::Vcpu& v, const vcpu::VcpuExit& exit) {
  SSI_ASSIGN_OR_RETURN(kvm_regs regs, v.get_regs());
  const auto& bytes = exit.internal.insn_bytes;
  if (exit.internal.suberror != KVM_INTERNAL_ERROR_EMULATION) {
    return stop(unsupported_line(
        regs.rip, bytes, fmt::format("KVM internal error suberror {}", exit.internal.suberror)));
  }
  std::uint16_t fsw = 0, fcw = 0x37F;  // the x87 state only matters for fwait
  if (!bytes.empty() && bytes[0] == 0x9B) {
    SSI_ASSIGN_OR_RETURN(kvm_fpu fpu, v.get_fpu());
    fsw = fpu.fsw;
    fcw = fpu.fcw;
  }
  const InsnDecision d = decide_unsupported(bytes, fsw, fcw);
  if (d.action == InsnAction::kStop) return stop(unsupported_line(regs.rip, bytes, d.reason));
  if (d.action == InsnAction::kSoftwareInterrupt)
    return deliver_software_interrupt(v, regs, d.vector, d.length, bytes);
  regs.rip += d.length;
  SSI_TRY(v.set_regs(regs));
  if (d.action == InsnAction::kInjectBreakpoint) {
    // #BP is a trap: the handler sees the RIP after the int3, as set above.
    SSI_ASSIGN_OR_RETURN(kvm_vcpu_events ev, v.get_events());
    ev.exception.injected = 1;
    ev.exception.nr = kBpVector;
    ev.exception.has_error_code = 0;
    ev.exception.error_code = 0;
    SSI_TRY(v.set_events(ev));
  }
  return ok();
}

}  // namespace ssi::machine
