// A vCPU's complete architectural state as one value: what vCPU migration
// moves between nodes (what it holds and why MSRs are set one by one: KVM
// fact #6, docs/vcpu.md). Serialised as a
// versioned, length- and checksum-protected byte string.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.hpp"
#include "vcpu/kvm.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {

struct CpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  XsaveArea xsave;  // legacy 4 KiB region (XSAVE2 beyond it is not used here)
  kvm_xcrs xcrs{};
  kvm_vcpu_events events{};
  kvm_mp_state mp_state{};
  kvm_debugregs debugregs{};
  std::vector<kvm_msr_entry> msrs;
  CpuidEntries cpuid;
  LapicState lapic;
};

bool operator==(const CpuState& a, const CpuState& b);  // bytewise

// MSRs that are saved: SYSENTER, STAR/LSTAR/CSTAR/SFMASK, FS/GS/kernel GS
// base, TSC, TSC_AUX, PAT, MISC_ENABLE, EFER lives in sregs. No KVM PV MSRs.
const std::vector<std::uint32_t>& saved_msr_indices();

inline constexpr std::uint32_t kCpuStateVersion = 1;

std::vector<std::uint8_t> serialize(const CpuState& state);
// Errc::kProtocol with a message saying what is wrong (bad magic, version,
// truncated, length mismatch, checksum), never a crash.
Result<CpuState> deserialize(std::span<const std::uint8_t> bytes);

// Finishes an I/O or MMIO read whose data the run loop has filled in but the
// guest has not received yet (KVM_RUN with immediate_exit: no guest code
// runs; at a read exit RIP still points at the load: KVM fact #2,
// docs/vcpu.md).
Result<void> complete_pending_io(Vcpu& vcpu);

// Call on a vCPU that is out of KVM_RUN (paused). Completes pending I/O first.
Result<CpuState> save_cpu_state(Vcpu& vcpu, const Lapic& lapic);
// KVM is always given mp_state RUNNABLE: without an in-kernel LAPIC it
// refuses anything else; the runner keeps HALTED / wait-for-SIPI itself.
// An empty `state.cpuid` leaves the vCPU's CPUID as it is (a KVM vCPU that
// has run refuses KVM_SET_CPUID2: vCPU mobility reuses such vCPUs).
Result<void> restore_cpu_state(Vcpu& vcpu, Lapic& lapic, const CpuState& state);

}  // namespace ssi::vcpu
