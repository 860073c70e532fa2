// CPUID policy: hide what the kvm_pvm emulator cannot execute at CPL0 (SSE
// arithmetic, x87, xsave, popcnt...: KVM fact #7, docs/vcpu.md), so guest
// code that checks CPUID never tries it.
#include <algorithm>

#include "vcpu/kvm.hpp"

namespace ssi::vcpu {
namespace {

constexpr std::uint32_t bit(unsigned n) { return 1u << n; }

// CPUID.1:ECX
constexpr std::uint32_t kEcxSse3 = bit(0), kEcxFma = bit(12), kEcxCx16 = bit(13),
                        kEcxSse42 = bit(20), kEcxX2apic = bit(21), kEcxPopcnt = bit(23),
                        kEcxTscDeadline = bit(24), kEcxXsave = bit(26), kEcxOsxsave = bit(27),
                        kEcxAvx = bit(28), kEcxF16c = bit(29);
// CPUID.7.0:EBX
constexpr std::uint32_t kEbx7Avx2 = bit(5),
                        kEbx7Avx512 = bit(16) | bit(17) | bit(21) | bit(26) | bit(27) |
                                      bit(28) | bit(30) | bit(31);
// CPUID.0x80000001:EDX
constexpr std::uint32_t kExtEdxRdtscp = bit(27);
// CPUID.0x80000007:EDX
constexpr std::uint32_t kPowerEdxInvariantTsc = bit(8);
// CPUID.0x80000008:ECX: NC (cores - 1, bits 7:0), ApicIdCoreIdSize (15:12)
constexpr std::uint32_t kExtEcxCores = 0xF0FFu;

}  // namespace

CpuidEntries filter_cpuid(CpuidEntries entries, const CpuidPolicy& policy) {
  (void)kEcxSse3;  // kept: SSE3 moves are harmless, arithmetic is blocked anyway
  std::erase_if(entries, [&](const kvm_cpuid_entry2& e) {
    return policy.hide_xsave && e.function == 0xD;  // XSAVE state enumeration
  });
  for (auto& e : entries) {
    if (e.function == 1) {
      if (policy.hide_xsave) e.ecx &= ~(kEcxXsave | kEcxOsxsave | kEcxAvx | kEcxFma | kEcxF16c);
      if (policy.hide_sse42_popcnt) e.ecx &= ~(kEcxSse42 | kEcxPopcnt);
      if (policy.hide_cx16) e.ecx &= ~kEcxCx16;
      if (policy.hide_x2apic) e.ecx &= ~kEcxX2apic;
      if (policy.tsc_deadline)
        e.ecx |= kEcxTscDeadline;
      else
        e.ecx &= ~kEcxTscDeadline;
    } else if (e.function == 7 && e.index == 0) {
      if (policy.hide_xsave) e.ebx &= ~(kEbx7Avx2 | kEbx7Avx512);
    } else if (e.function == 0x80000001) {
      if (policy.hide_rdtscp) e.edx &= ~kExtEdxRdtscp;
    } else if (e.function == 0x80000007) {
      if (policy.invariant_tsc) e.edx |= kPowerEdxInvariantTsc;
    } else if (e.function == 0x80000006) {
      if (policy.own_package) e.edx = 0;  // L3: none
    } else if (e.function == 0x80000008) {
      if (policy.own_package) e.ecx &= ~kExtEcxCores;
    } else if (e.function == 0x40000001) {
      // KVM PV features (async PF, PV EOI, steal time...) need an in-kernel
      // LAPIC; MSR 0x4b564d06 even fails to restore without one.
      if (policy.hide_kvm_pv) e.eax = e.ebx = e.ecx = e.edx = 0;
    }
  }
  return entries;
}

CpuidEntries set_cpuid_apic_id(CpuidEntries entries, std::uint32_t apic_id) {
  for (auto& e : entries) {
    if (e.function == 1) {
      e.ebx = (e.ebx & 0x00FFFFFFu) | ((apic_id & 0xFFu) << 24);
    } else if (e.function == 0xB || e.function == 0x1F) {
      e.edx = apic_id;  // x2APIC id of this logical processor, every sub-leaf
    }
  }
  return entries;
}

LapicFeatures lapic_features(const CpuidEntries& entries) {
  LapicFeatures f;
  f.x2apic = false;
  for (const auto& e : entries) {
    if (e.function == 1) f.x2apic = (e.ecx & kEcxX2apic) != 0;
    if (e.function == 0x80000008 && (e.eax & 0xFF) != 0) f.phys_bits = e.eax & 0xFF;
  }
  return f;
}

}  // namespace ssi::vcpu
