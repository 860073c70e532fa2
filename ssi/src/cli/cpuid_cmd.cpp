#include "cpuid_cmd.hpp"

#include <algorithm>
#include <cstdio>

#include "base/exit_code.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::cli {

int run_cpuid_command(const CpuidCommandOptions& o) {
  auto hv = vcpu::open_kvm();
  if (!hv.ok()) {
    std::fprintf(stderr, "ssi: error: no usable KVM: %s\n", hv.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  auto supported = (*hv)->supported_cpuid();
  if (!supported.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", supported.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  // The same expression as Machine::create and the node processes' workload.
  vcpu::CpuidEntries entries = vcpu::set_cpuid_apic_id(
      vcpu::filter_cpuid(std::move(*supported), vcpu::CpuidPolicy{}), o.apic_id);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.function != b.function ? a.function < b.function : a.index < b.index;
  });
  for (const auto& e : entries) {
    if (o.leaf && e.function != *o.leaf) continue;
    std::printf("leaf 0x%08x.%u eax=0x%08x ebx=0x%08x ecx=0x%08x edx=0x%08x\n", e.function, e.index,
                e.eax, e.ebx, e.ecx, e.edx);
  }
  return 0;
}

}  // namespace ssi::cli
