// Which x2APIC MSRs exist and what a guest may do with them (SDM 10.12.1.2,
// table "Local APIC Register Address Map Supported by x2APIC"); private to vcpu/.
#pragma once

#include <cstdint>
#include <optional>

namespace ssi::vcpu::x2apic {

struct Rule {
  bool read = false;
  bool write = false;
  // Bits a WRMSR may set; any other bit set is a reserved-bit violation (#GP).
  std::uint32_t writable = 0;
  // Read-only bits a WRMSR may carry back unchanged (delivery status, remote
  // IRR): ignored rather than #GP, as guests write back what they read.
  std::uint32_t ignored = 0;
};

// nullopt: no such register in x2APIC mode (every access #GPs).
std::optional<Rule> rule(std::uint32_t offset);

// ICR (64-bit in x2APIC): vector, delivery mode, destination mode, level,
// trigger mode, shorthand; bits 12, 13, 16, 17 and 20-31 are reserved.
inline constexpr std::uint64_t kIcrWritable = 0xFFFFFFFF000CCFFFull;

}  // namespace ssi::vcpu::x2apic
