// KvmVcpu: one KVM vCPU fd and its kvm_run page (private to vcpu/).
#pragma once

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <string>

#include "fd.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::vcpu::detail {

// KVM_GET_SUPPORTED_CPUID (system fd) or KVM_GET_CPUID2 (vCPU fd).
Result<CpuidEntries> read_cpuid(int fd, unsigned long request, const std::string& what);

class KvmVcpu final : public Vcpu {
 public:
  KvmVcpu(VcpuId id, Fd fd, Mapping run);

  VcpuId id() const override { return id_; }
  Result<VcpuExit> run() override;
  void kick() override;
  void request_interrupt_window(bool on) override;
  void set_cr8(std::uint8_t cr8) override;
  Result<void> inject_interrupt(std::uint8_t vector) override;
  Result<void> inject_nmi() override;
  Result<void> set_cpuid(const CpuidEntries& entries) override;
  Result<CpuidEntries> get_cpuid() override;
  Result<kvm_regs> get_regs() override;
  Result<void> set_regs(const kvm_regs& regs) override;
  Result<kvm_sregs> get_sregs() override;
  Result<void> set_sregs(const kvm_sregs& sregs) override;
  Result<kvm_fpu> get_fpu() override;
  Result<void> set_fpu(const kvm_fpu& fpu) override;
  Result<XsaveArea> get_xsave() override;
  Result<void> set_xsave(const XsaveArea& xsave) override;
  Result<kvm_xcrs> get_xcrs() override;
  Result<void> set_xcrs(const kvm_xcrs& xcrs) override;
  Result<kvm_vcpu_events> get_events() override;
  Result<void> set_events(const kvm_vcpu_events& events) override;
  Result<kvm_mp_state> get_mp_state() override;
  Result<void> set_mp_state(const kvm_mp_state& mp) override;
  Result<kvm_debugregs> get_debugregs() override;
  Result<void> set_debugregs(const kvm_debugregs& dr) override;
  Result<std::vector<kvm_msr_entry>> get_msrs(const std::vector<std::uint32_t>& indices) override;
  Result<void> set_msrs(const std::vector<kvm_msr_entry>& msrs) override;
  Result<std::uint64_t> get_tsc_khz() override;
  Result<std::optional<std::int64_t>> get_tsc_offset() override;
  Result<void> set_tsc_offset(std::int64_t offset) override;

 private:
  template <typename T>
  Result<T> get(unsigned long request, const char* what);
  template <typename T>
  Result<void> set(unsigned long request, const T& value, const char* what);
  VcpuExit decode();

  VcpuId id_;
  Fd fd_;
  Mapping run_map_;
  kvm_run* run_;
  std::atomic<bool> kick_pending_{false};
  // The thread inside run(), for kick(); guarded so that a kicker never
  // signals a thread that has left run() and may have exited.
  std::mutex thread_mu_;
  bool in_run_ = false;
  pthread_t thread_{};
};

}  // namespace ssi::vcpu::detail
