#include "lapic_x2apic.hpp"

#include "vcpu/lapic.hpp"

namespace ssi::vcpu::x2apic {

namespace r = apic_reg;

std::optional<Rule> rule(std::uint32_t off) {
  constexpr std::uint32_t kLvtRo = 1u << 12;                // delivery status
  constexpr std::uint32_t kLintRo = kLvtRo | (1u << 14);    // + remote IRR
  constexpr Rule ro{true, false, 0, 0};
  if (off >= r::kIsr && off < r::kIrr + 0x80) return ro;    // ISR, TMR, IRR
  switch (off) {
    case r::kId: case r::kVersion: case r::kPpr: case r::kLdr: case r::kTimerCurrent:
      return ro;
    case r::kTpr: return Rule{true, true, 0xFF, 0};
    case r::kEoi: return Rule{false, true, 0, 0};           // only 0 may be written
    case r::kSvr: return Rule{true, true, 0x3FF, 0};        // no directed EOI (version bit 24)
    case r::kEsr: return Rule{true, true, 0, 0};            // write 0 to latch errors
    case r::kLvtTimer: return Rule{true, true, 0x700FF, kLvtRo};
    case r::kLvtCmci: case r::kLvtThermal: case r::kLvtPerf:
      return Rule{true, true, 0x107FF, kLvtRo};
    case r::kLvtLint0: case r::kLvtLint1: return Rule{true, true, 0x1A7FF, kLintRo};
    case r::kLvtError: return Rule{true, true, 0x100FF, kLvtRo};
    case r::kTimerInitial: return Rule{true, true, 0xFFFFFFFF, 0};
    case r::kTimerDivide: return Rule{true, true, 0xB, 0};
    case r::kSelfIpi: return Rule{false, true, 0xFF, 0};
    case r::kIcrLow: return Rule{true, true, 0, 0};         // 64-bit: kIcrWritable
    default: return std::nullopt;  // APR, RRD, DFR, ICR high and the reserved slots
  }
}

}  // namespace ssi::vcpu::x2apic
