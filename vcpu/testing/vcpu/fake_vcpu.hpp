// A Vcpu that replays scripted exits (crosvm/Firecracker style) and records
// what the run loop did to it: injected interrupts, window requests, kicks,
// the data it filled in for reads, and every register set. For unit tests of
// the run loop, the LAPIC glue and CPU-state save/restore without /dev/kvm.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>

#include "vcpu/kvm.hpp"

namespace ssi::vcpu::testing {

struct ScriptedExit {
  VcpuExit exit;                     // spans/pointers are filled in by FakeVcpu
  std::vector<std::uint8_t> data;    // I/O or MMIO bytes (writes: what the guest wrote)
  std::uint64_t msr_data = 0;        // WRMSR value; RDMSR: what the run loop answered
  std::uint8_t msr_error = 0;        // the run loop set 1: the guest gets #GP
  std::function<void()> before;      // runs inside run() just before the exit is returned
  // Runs after `before`: computes the bytes of a write at run time (what a
  // guest would have in a register), e.g. an exit code from a check.
  std::function<void(std::span<std::uint8_t>)> fill;
  // The guest wrote CR8 (mov cr8) before this exit; unset: CR8 is what the
  // run loop set at the entry.
  std::optional<std::uint8_t> cr8;
};

// What the run loop answered for a read exit (recorded at the next run()).
struct CompletedRead {
  ExitKind kind;
  std::uint64_t address = 0;          // port, gpa or MSR index
  std::vector<std::uint8_t> data;     // I/O, MMIO
  std::uint64_t msr_data = 0;
  std::uint8_t msr_error = 0;
};

class FakeVcpu final : public Vcpu {
 public:
  explicit FakeVcpu(VcpuId id) : id_(id) {}

  // Script builders. `ready` = ready_for_interrupt_injection (and IF) at that exit.
  FakeVcpu& push(ScriptedExit e);
  FakeVcpu& push_io_out(std::uint16_t port, std::vector<std::uint8_t> bytes, bool ready = true);
  FakeVcpu& push_io_in(std::uint16_t port, std::uint8_t size, bool ready = true);
  // rep outs / rep ins: `count` elements of `size` bytes at `port` in one exit.
  FakeVcpu& push_io_string_out(std::uint16_t port, std::uint8_t size,
                               std::vector<std::uint8_t> bytes, bool ready = true);
  FakeVcpu& push_io_string_in(std::uint16_t port, std::uint8_t size, std::uint32_t count,
                              bool ready = true);
  FakeVcpu& push_mmio_write(std::uint64_t gpa, std::vector<std::uint8_t> bytes, bool ready = true);
  FakeVcpu& push_mmio_read(std::uint64_t gpa, std::uint32_t len, bool ready = true);
  FakeVcpu& push_rdmsr(std::uint32_t index, MsrExitReason reason, bool ready = true);
  FakeVcpu& push_wrmsr(std::uint32_t index, std::uint64_t value, MsrExitReason reason,
                       bool ready = true);
  FakeVcpu& push_simple(ExitKind kind, bool ready = true);  // HLT, SHUTDOWN, window, EINTR...
  // The guest lowered CR8 to `cr8` (kvm-amd: KVM_EXIT_SET_TPR).
  FakeVcpu& push_set_tpr(std::uint8_t cr8, bool ready = true);
  FakeVcpu& then_cr8(std::uint8_t cr8);  // the guest wrote CR8 before the last pushed exit
  FakeVcpu& then(std::function<void()> before);  // attach to the last pushed exit
  FakeVcpu& then_fill(std::function<void(std::span<std::uint8_t>)> fill);  // likewise

  // --- recordings (read from the test thread after run() returned) ---
  std::vector<std::uint8_t> injected() const;        // KVM_INTERRUPT vectors in order
  int nmis() const;
  std::vector<bool> window_requests() const;         // request_interrupt_window at each run()
  std::vector<std::uint8_t> cr8_at_entries() const;  // set_cr8 value at each run()
  std::vector<CompletedRead> completed_reads() const;
  int kicks() const { return kicks_.load(); }
  int runs() const;
  // Number of inject_interrupt calls made when the last exit said not ready.
  int bad_injections() const;
  std::size_t remaining() const;

  // --- Vcpu ---
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
  Result<std::uint64_t> get_tsc_khz() override { return tsc_khz; }
  // Like KVM's attribute: moving the offset moves msrs[0x10] with it.
  Result<std::optional<std::int64_t>> get_tsc_offset() override { return tsc_offset; }
  Result<void> set_tsc_offset(std::int64_t offset) override {
    if (!tsc_offset) return make_error(Errc::kUnsupported, "fake vCPU: no TSC offset attribute");
    msrs[0x10] += static_cast<std::uint64_t>(offset - *tsc_offset);
    tsc_offset = offset;
    return ok();
  }

  // Direct access to the stored state (tests set it up / inspect it).
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  XsaveArea xsave{};
  kvm_xcrs xcrs{};
  kvm_vcpu_events events{};
  kvm_mp_state mp_state{};
  kvm_debugregs debugregs{};
  CpuidEntries cpuid;
  std::map<std::uint32_t, std::uint64_t> msrs;  // 0x10 = the guest TSC
  std::uint64_t tsc_khz = 2'000'000;
  std::optional<std::int64_t> tsc_offset;  // nullopt: like a KVM before 5.16
  // Runs inside inject_interrupt (outside the fake's lock): tests stretch
  // the run loop's way into the guest with it.
  std::function<void()> on_inject;
  // An MSR index set_msrs refuses (like 0x4b564d06 without in-kernel LAPIC).
  std::optional<std::uint32_t> refuse_msr;

 private:
  void record_completion();

  VcpuId id_;
  mutable std::mutex mu_;
  std::deque<ScriptedExit> script_;
  std::optional<ScriptedExit> current_;  // the exit whose buffers the runner may fill
  std::atomic<bool> kick_pending_{false};
  std::atomic<int> kicks_{0};
  bool window_ = false;
  bool last_ready_ = true;
  std::optional<std::uint8_t> queued_vector_;
  std::vector<std::uint8_t> injected_;
  int nmis_ = 0;
  int runs_ = 0;
  int bad_injections_ = 0;
  std::vector<bool> window_requests_;
  std::uint8_t cr8_ = 0;  // the guest's CR8 (kvm_run->cr8)
  std::vector<std::uint8_t> cr8_at_entries_;
  std::vector<CompletedRead> completed_;
};

}  // namespace ssi::vcpu::testing
