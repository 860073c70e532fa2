// KVM behind a small interface (cloud-hypervisor style): the run loop, the
// LAPIC glue and CPU-state save/restore only talk to Vcpu / Vm, so they run
// in unit tests against vcpu/testing/vcpu/fake_vcpu.hpp. The real
// implementation (open_kvm) owns every fd and the kvm_run mapping with RAII.
//
// State structs are the kernel's own (linux/kvm.h): they are plain data, and
// they are what travels when a vCPU migrates between nodes of one cluster.
#pragma once

#include "vcpu/kvm_abi.hpp"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "vcpu/exit.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {

using CpuidEntries = std::vector<kvm_cpuid_entry2>;

// The legacy 4 KiB XSAVE region of struct kvm_xsave (KVM_GET/SET_XSAVE).
// kvm_xsave itself ends in a flexible array and cannot be a plain member.
struct XsaveArea {
  std::array<std::uint32_t, 1024> region{};
};
static_assert(sizeof(XsaveArea) == sizeof(kvm_xsave), "KVM_GET/SET_XSAVE copy sizeof(kvm_xsave)");

class Vcpu {
 public:
  virtual ~Vcpu() = default;
  virtual VcpuId id() const = 0;

  // One KVM_RUN. EINTR is not an error: it is ExitKind::kInterrupted. If a
  // kick is pending, KVM_RUN runs with immediate_exit=1 (this still completes
  // a pending I/O or MMIO read without running guest code).
  virtual Result<VcpuExit> run() = 0;

  // Thread-safe, callable from any thread at any time: makes the run() in
  // progress (or the next one) return kInterrupted soon. Never lost: a
  // kick-pending flag is set before the signal and checked before KVM_RUN.
  virtual void kick() = 0;

  // kvm_run in-field: ask for an kIrqWindowOpen exit as soon as the guest
  // can take an interrupt. Takes effect at the next run().
  virtual void request_interrupt_window(bool on) = 0;
  // kvm_run in-field: the CR8 the guest sees from the next run() on. Without
  // an in-kernel LAPIC KVM loads kvm_run->cr8 into CR8 at every KVM_RUN, so
  // the run loop sets it to TPR >> 4 before each entry.
  virtual void set_cr8(std::uint8_t cr8) = 0;
  // KVM_INTERRUPT (no in-kernel irqchip): queue `vector` for injection at the
  // next entry. Only valid when the last exit said ready_for_interrupt_injection.
  virtual Result<void> inject_interrupt(std::uint8_t vector) = 0;
  virtual Result<void> inject_nmi() = 0;  // KVM_NMI

  virtual Result<void> set_cpuid(const CpuidEntries& entries) = 0;
  virtual Result<CpuidEntries> get_cpuid() = 0;

  virtual Result<kvm_regs> get_regs() = 0;
  virtual Result<void> set_regs(const kvm_regs& regs) = 0;
  virtual Result<kvm_sregs> get_sregs() = 0;
  virtual Result<void> set_sregs(const kvm_sregs& sregs) = 0;
  virtual Result<kvm_fpu> get_fpu() = 0;
  virtual Result<void> set_fpu(const kvm_fpu& fpu) = 0;
  virtual Result<XsaveArea> get_xsave() = 0;
  virtual Result<void> set_xsave(const XsaveArea& xsave) = 0;
  virtual Result<kvm_xcrs> get_xcrs() = 0;
  virtual Result<void> set_xcrs(const kvm_xcrs& xcrs) = 0;
  virtual Result<kvm_vcpu_events> get_events() = 0;
  virtual Result<void> set_events(const kvm_vcpu_events& events) = 0;
  virtual Result<kvm_mp_state> get_mp_state() = 0;
  virtual Result<void> set_mp_state(const kvm_mp_state& mp) = 0;
  virtual Result<kvm_debugregs> get_debugregs() = 0;
  virtual Result<void> set_debugregs(const kvm_debugregs& dr) = 0;
  // Reads the given MSR indices; entries KVM does not know are left out.
  virtual Result<std::vector<kvm_msr_entry>> get_msrs(
      const std::vector<std::uint32_t>& indices) = 0;
  // Sets MSRs one at a time (a KVM_SET_MSRS batch stops at the first MSR
  // KVM refuses, e.g. the async-PF MSR without an in-kernel LAPIC: KVM
  // fact #6, docs/vcpu.md); returns an error naming the first that failed.
  virtual Result<void> set_msrs(const std::vector<kvm_msr_entry>& msrs) = 0;
  // KVM_GET_TSC_KHZ: the guest TSC rate (for the LAPIC's TSC-deadline mode).
  virtual Result<std::uint64_t> get_tsc_khz() = 0;
  // The vCPU attribute KVM_VCPU_TSC_OFFSET (group KVM_VCPU_TSC_CTRL, Linux
  // 5.16+): guest TSC = host TSC (scaled) + offset. nullopt if this KVM
  // lacks it. Setting it is exact, unlike a write of MSR 0x10, which KVM may
  // take for a "synchronization" and replace (docs/vcpu.md, the TSC epoch).
  virtual Result<std::optional<std::int64_t>> get_tsc_offset() = 0;
  virtual Result<void> set_tsc_offset(std::int64_t offset) = 0;
};

struct MemorySlot {
  std::uint32_t slot = 0;
  Gpa gpa;
  std::uint64_t size = 0;  // bytes, multiple of 4 KiB
  void* host = nullptr;    // page-aligned; owned by the caller, must outlive the Vm
  bool read_only = false;
};

struct VmOptions {
  // KVM_CAP_X86_USER_SPACE_MSR (INVAL|UNKNOWN|FILTER) plus a filter that
  // sends APIC_BASE (0x1b) and TSC_DEADLINE (0x6e0) to userspace; x2APIC
  // MSRs 0x800-0x8ff exit with reason INVAL anyway (KVM fact #5b,
  // docs/vcpu.md).
  bool userspace_msrs = true;
};

class Vm {
 public:
  virtual ~Vm() = default;
  virtual Result<void> add_memory(const MemorySlot& slot) = 0;
  // The new vCPU has no CPUID yet: give it supported_cpuid() passed through
  // filter_cpuid() and set_cpuid_apic_id() with Vcpu::set_cpuid().
  virtual Result<std::unique_ptr<Vcpu>> create_vcpu(VcpuId id) = 0;
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  virtual Result<CpuidEntries> supported_cpuid() = 0;
  virtual Result<std::unique_ptr<Vm>> create_vm(const VmOptions& options) = 0;
  // KVM_CAP_NR_VCPUS (recommended maximum) for CLI checks.
  virtual int max_vcpus() const = 0;
};

// Opens /dev/kvm (or `path`). Errc::kUnsupported if it does not exist,
// Errc::kSystem (with errno, e.g. EACCES) if it cannot be opened, or if the
// KVM API version / a needed capability is missing.
Result<std::unique_ptr<Hypervisor>> open_kvm(const std::string& path = "/dev/kvm");

// True if /dev/kvm exists and opens (for tests: GTEST_SKIP otherwise).
bool kvm_available();

// What the guest is told it has. Masks what this machine kind's emulator
// cannot execute (KVM fact #7, docs/vcpu.md) so guest code never tries it.
struct CpuidPolicy {
  bool hide_xsave = true;     // XSAVE, OSXSAVE, AVX*, leaf 0xD
  bool hide_sse42_popcnt = true;  // SSE4.2 (crc32), POPCNT
  bool hide_cx16 = true;
  bool hide_rdtscp = true;
  bool hide_x2apic = false;   // x2APIC works through MSR exits
  bool hide_kvm_pv = true;    // leaf 0x40000001 features: need in-kernel LAPIC
  bool tsc_deadline = true;   // keep CPUID.1:ECX[24]; 0x6e0 is filtered to us
  // Each vCPU its own package: no L3 in 0x80000006, no core count or APIC-id
  // core bits in 0x80000008. vCPUs on different ssi nodes share no cache;
  // with the host's values Linux puts APIC ids 0-7 in one LLC and warns when
  // that LLC spans two NUMA nodes (docs/guests.md).
  bool own_package = true;
  // CPUID.0x80000007:EDX[8], invariant TSC: KVM runs the guest TSC at one
  // fixed rate, and ssi starts every node's vCPUs from one machine-wide TSC
  // epoch (set_tsc_from_epoch), so the TSCs agree across nodes. Without it
  // Linux on AMD marks the TSC unstable whenever there are 2+ CPUs and
  // falls back to jiffies, which every clock read then shares between nodes.
  bool invariant_tsc = true;
};

// Pure: returns `entries` with the policy applied.
CpuidEntries filter_cpuid(CpuidEntries entries, const CpuidPolicy& policy);
// Pure: puts the APIC id into CPUID.1:EBX[31:24] and leaf 0xB EDX.
CpuidEntries set_cpuid_apic_id(CpuidEntries entries, std::uint32_t apic_id);
// Pure: what `entries` tell the LAPIC (x2APIC flag, physical address width
// from leaf 0x80000008, 36 bits if absent as the SDM says).
LapicFeatures lapic_features(const CpuidEntries& entries);

}  // namespace ssi::vcpu
