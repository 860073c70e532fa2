// What to do when KVM's instruction emulator gives up
// (KVM_EXIT_INTERNAL_ERROR, suberror EMULATION; the kvm-pvm emulator, docs/kvm.md):
// decode the instruction bytes KVM reports and, where the architectural
// effect is simple, complete it in userspace:
//   int3 (cc) / int $3 (cd 03)      -> RIP past it, inject #BP (a trap)
//   int $n (cd nn), at CPL 0         -> RIP past it, deliver vector n
//   fwait (9b), no pending x87 fault -> RIP past it
// Anything else stops the machine with one line naming RIP and the bytes
// (the CLI turns that into exit code 2). Never a hang, never a guess.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "base/result.hpp"
#include "vcpu/exit.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::machine {

enum class InsnAction { kInjectBreakpoint, kSoftwareInterrupt, kSkip, kStop };

struct InsnDecision {
  InsnAction action = InsnAction::kStop;
  std::uint8_t length = 0;  // bytes RIP advances by (every action but kStop)
  std::string reason{};     // kStop: why, one line without RIP
  std::uint8_t vector = 0;  // kSoftwareInterrupt: n of `int $n`
};

// Pure: the decision for `bytes` at the failing RIP, given the x87 status and
// control words (a pending unmasked x87 exception makes fwait fault, which
// ssi does not emulate).
InsnDecision decide_unsupported(std::span<const std::uint8_t> bytes, std::uint16_t fsw,
                                std::uint16_t fcw);

// "unsupported instruction at rip 0x...: 0f ae 20 (...)": the stop line.
std::string unsupported_line(std::uint64_t rip, std::span<const std::uint8_t> bytes,
                             const std::string& reason);

// Handles one internal-error exit on `vcpu`: ok() if the instruction was
// completed (the run loop goes on), else an Errc::kUnsupported error whose
// message is the stop line. Non-emulation suberrors always stop.
Result<void> handle_internal_error(vcpu::Vcpu& vcpu, const vcpu::VcpuExit& exit);

}  // namespace ssi::machine
