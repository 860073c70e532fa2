// `ssi cpuid`: the CPUID leaves ssi's vCPUs present on this host, i.e. the
// policy (vcpu::filter_cpuid) applied to what this KVM supports, exactly as
// `ssi run` hands it to KVM_SET_CPUID2. Without CLI11 (only cli.cpp has it).
#pragma once

#include <cstdint>
#include <optional>

namespace ssi::cli {

struct CpuidCommandOptions {
  std::uint32_t apic_id = 0;          // as vCPU `apic_id` sees them
  std::optional<std::uint32_t> leaf;  // only this leaf (all sub-leaves)
};

// Prints one line per (leaf, sub-leaf), sorted:
//   leaf 0x00000001.0 eax=0x... ebx=0x... ecx=0x... edx=0x...
// Returns the process exit code (2 without a usable /dev/kvm).
int run_cpuid_command(const CpuidCommandOptions& options);

}  // namespace ssi::cli
