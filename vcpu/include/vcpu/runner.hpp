// The vCPU run loop: one per vCPU, on that vCPU's own OS thread. Each pass:
// honour stop/pause requests, take INIT/SIPI, fire the LAPIC timer, inject a
// pending interrupt if the guest is ready (else request a window), KVM_RUN,
// and dispatch the exit: I/O and non-LAPIC MMIO to the IoHandler, LAPIC MMIO
// and x2APIC/APIC_BASE/TSC_DEADLINE MSRs to the Lapic, HLT parks the thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "base/clock.hpp"
#include "base/result.hpp"
#include "vcpu/cpu_state.hpp"
#include "vcpu/io.hpp"
#include "vcpu/kvm.hpp"
#include "vcpu/lapic.hpp"
#include "vcpu/state.hpp"

namespace ssi::vcpu {

// Pure: the register state an AP starts with after INIT + SIPI(vector):
// real mode, CS.selector = vector << 8, CS.base = vector << 12, RIP = 0.
// `base` supplies everything SIPI does not define (e.g. from get_sregs()).
kvm_sregs sipi_sregs(kvm_sregs base, std::uint8_t vector);
kvm_regs sipi_regs();

// Samples the guest TSC (MSR 0x10) and its rate (KVM_GET_TSC_KHZ) against
// `clock`, for Lapic::set_tsc_model. Call on a vCPU that is not running.
// A non-zero `tsc_hz` (KVM keeps a vCPU's rate) skips KVM_GET_TSC_KHZ.
Result<TscModel> read_tsc_model(Vcpu& vcpu, const Clock& clock, std::uint64_t tsc_hz = 0);

// Sets the vCPU's TSC to the cycles since `epoch_realtime_ns` (CLOCK_REALTIME)
// at its own rate: vCPUs of one machine on different nodes (different KVM
// VMs, created at different times) then read the same TSC at the same time,
// as far as the nodes' clocks agree. Call before the vCPU first runs.
// Moves KVM's TSC offset where KVM has the attribute; else writes MSR 0x10,
// which KVM may replace by its own guess when the value is within a second
// of what it expects (a warning says so once).
Result<void> set_tsc_from_epoch(Vcpu& vcpu, std::int64_t epoch_realtime_ns);

struct RunnerOptions {
  // HLT parks the thread on a condition variable; it re-checks at least this
  // often (bounded waits; also catches a missed notify).
  std::chrono::milliseconds halt_slice{5};
  // notify() also kicks the vCPU out of KVM_RUN, so an interrupt from
  // another thread is injected at the EINTR exit (~20 us) instead of waiting
  // for the guest's next exit or a window exit (1-2 ms on kvm_pvm: KVM
  // fact #3, docs/vcpu.md).
  bool kick_on_notify = true;
  // How an AP starts on SIPI. Default: real mode at vector << 12 via
  // sipi_sregs/sipi_regs. A machine may install a shortcut (e.g. enter long
  // mode at a prepared entry) for test kernels.
  std::function<Result<void>(Vcpu&, std::uint8_t vector)> on_sipi;
  // KVM_EXIT_INTERNAL_ERROR: if set, may complete the instruction KVM could
  // not emulate (ok() = run on); its error stops the vCPU. Unset: always stop.
  std::function<Result<void>(Vcpu&, const VcpuExit&)> on_internal_error;
};

class VcpuRunner {
 public:
  VcpuRunner(Vcpu& vcpu, Lapic& lapic, IoHandler& io, ExitRequest& exit_request,
             const Clock& clock, RunnerOptions options = {});
  ~VcpuRunner();
  VcpuRunner(const VcpuRunner&) = delete;
  VcpuRunner& operator=(const VcpuRunner&) = delete;

  // Runs on the calling thread until the machine exit request, stop(), or an
  // error (guest triple fault, failed entry, KVM internal error with the
  // instruction bytes, an IoHandler error). On error the caller usually
  // requests machine exit. A BSP starts Runnable, an AP Created (waits for SIPI).
  Result<void> run();

  // Thread-safe. Something may need the vCPU's attention (interrupt, IPI,
  // timer due, state change): wake it from HLT or kick it out of KVM_RUN.
  void notify();
  // Thread-safe. Pause returns at once; wait_paused() blocks (bounded) until
  // the vCPU is out of the guest and parked in Paused.
  void pause();
  bool wait_paused(std::chrono::milliseconds timeout);
  void resume();
  void stop();

  VcpuState state() const;

  // Migration unit. While Paused (after pause() + wait_paused()): the vCPU's
  // whole state, with mp_state set from what this runner knows (HALTED,
  // INIT_RECEIVED = waiting for SIPI, else RUNNABLE); KVM without an
  // in-kernel LAPIC always reports RUNNABLE (KVM fact #3, docs/vcpu.md).
  Result<CpuState> save_state();
  // Before run(), on a fresh vCPU: load a saved state; run() then continues
  // in the saved Halted / waiting-for-SIPI / Runnable state.
  Result<void> restore_state(const CpuState& state);
  // Counters for tests and stats.
  struct Stats {
    std::uint64_t exits = 0, injected = 0, windows_requested = 0, halts = 0, kicks = 0;
    // Wall time spent inside Vcpu::run() (KVM_RUN): what a vCPU is billed.
    std::uint64_t run_ns = 0;
    // Exits by ExitKind (index = the enum's value; names: exit_kind_name).
    std::array<std::uint64_t, kExitKinds> exits_by_kind{};
  };
  Stats stats() const;

 private:
  struct Alive;  // lets ExitRequest / Lapic callbacks outlive this runner safely

  Result<bool> step();  // one pass; false = leave run()
  Result<void> enter_guest();
  bool work_arrived() const;
  Result<void> handle_hlt(const VcpuExit& exit);
  Result<void> dispatch(VcpuExit& exit);
  Result<void> handle_io(const IoExit& io);
  void handle_msr(VcpuExit& exit);
  void sync_apic_base();  // KVM's APIC_BASE (and so CPUID.1:EDX.APIC) = the LAPIC's
  // The LAPIC's TSC model (guest TSC <-> host time) from the vCPU's TSC now:
  // at run() and at every TSC_DEADLINE write.
  void refresh_tsc_model();
  Result<void> handle_startup();
  Result<void> deliver_interrupts();
  bool halt_wake_condition() const;
  void park(const std::function<bool()>& done);  // bounded waits until done()
  Result<void> apply(VcpuEvent event);
  bool should_leave() const;

  Vcpu& vcpu_;
  Lapic& lapic_;
  IoHandler& io_;
  ExitRequest& exit_request_;
  const Clock& clock_;
  RunnerOptions options_;
  std::shared_ptr<Alive> alive_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  VcpuStateMachine sm_;
  std::atomic<bool> pause_requested_{false};
  std::atomic<bool> stop_requested_{false};
  bool last_ready_ = false;      // ready_for_interrupt_injection at the last exit
  bool halted_if_flag_ = false;  // IF when the guest halted: cli;hlt sleeps for good
  bool window_requested_ = false;
  bool tsc_model_warned_ = false;
  std::uint64_t tsc_hz_ = 0;  // KVM_GET_TSC_KHZ, read at the first refresh
  bool resume_halted_ = false;  // restored from a halted vCPU: re-enter HLT first
  // Restored from a vCPU waiting for SIPI: it still waits, even if its LAPIC
  // already accepted the SIPI (the pending SIPI is what starts it).
  bool resume_waiting_ = false;
  std::optional<std::uint8_t> seen_vector_;  // pending vector deliver_interrupts() handled
  Stats stats_;
};

}  // namespace ssi::vcpu
