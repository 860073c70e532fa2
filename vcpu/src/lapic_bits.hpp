// Bit definitions shared by the LAPIC sources (private to vcpu/).
#pragma once

#include <cstdint>

#include "vcpu/lapic.hpp"

namespace ssi::vcpu::lapic_bits {

namespace r = apic_reg;
inline constexpr std::uint64_t kBaseBsp = 1u << 8, kBaseExtd = 1u << 10, kBaseEnable = 1u << 11;
inline constexpr std::uint32_t kSvrEnable = 1u << 8;
inline constexpr std::uint32_t kLvtMasked = 1u << 16;
inline constexpr std::uint32_t kVersion = 0x14 | (5u << 16);  // integrated APIC, 6 LVT entries

}  // namespace ssi::vcpu::lapic_bits
