#include "vcpu/runner.hpp"

#include <chrono>
#include <utility>

#include <fmt/format.h>

#include "base/log.hpp"

namespace ssi::vcpu {

struct VcpuRunner::Alive {
  std::mutex mu;
  VcpuRunner* self;
  void notify() {
    std::lock_guard lock(mu);
    if (self) self->notify();
  }
};

VcpuRunner::VcpuRunner(Vcpu& vcpu, Lapic& lapic, IoHandler& io, ExitRequest& exit_request,
                       const Clock& clock, RunnerOptions options)
    : vcpu_(vcpu), lapic_(lapic), io_(io), exit_request_(exit_request), clock_(clock),
      options_(std::move(options)), alive_(std::make_shared<Alive>()) {
  alive_->self = this;
  if (!options_.on_sipi) {
    options_.on_sipi = [](Vcpu& v, std::uint8_t vector) -> Result<void> {
      SSI_ASSIGN_OR_RETURN(kvm_sregs s, v.get_sregs());
      SSI_TRY(v.set_sregs(sipi_sregs(s, vector)));
      return v.set_regs(sipi_regs());
    };
  }
  std::weak_ptr<Alive> weak = alive_;
  auto poke = [weak] {
    if (auto a = weak.lock()) a->notify();
  };
  lapic_.set_wakeup(poke);
  exit_request_.add_listener(poke);
}

VcpuRunner::~VcpuRunner() {
  lapic_.set_wakeup(nullptr);
  std::lock_guard lock(alive_->mu);  // waits for a notify in progress
  alive_->self = nullptr;
}

Result<void> VcpuRunner::apply(VcpuEvent event) {
  std::lock_guard lock(mu_);
  auto r = sm_.apply(event);
  cv_.notify_all();  // wait_paused() watches the state
  return r;
}

VcpuState VcpuRunner::state() const {
  std::lock_guard lock(mu_);
  return sm_.state();
}

VcpuRunner::Stats VcpuRunner::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

bool VcpuRunner::should_leave() const {
  return stop_requested_ || exit_request_.requested();
}

Result<void> VcpuRunner::run() {
  if (auto cpuid = vcpu_.get_cpuid(); cpuid.ok() && !cpuid->empty())
    lapic_.set_features(lapic_features(*cpuid));
  sync_apic_base();
  refresh_tsc_model();  // after restore_state, which may have set the TSC
  bool waits_for_sipi = std::exchange(resume_waiting_, false) || lapic_.waiting_for_sipi();
  if (!waits_for_sipi) SSI_TRY(apply(VcpuEvent::kStart));
  if (std::exchange(resume_halted_, false)) {  // the guest is still in its HLT
    SSI_TRY(apply(VcpuEvent::kEnterGuest));
    SSI_TRY(apply(VcpuEvent::kHalt));
  }
  Result<void> result;
  while (true) {
    auto more = step();
    if (!more.ok()) {
      result = std::move(more).error();
      break;
    }
    if (!*more) break;
  }
  (void)apply(VcpuEvent::kStop);
  // Where the guest was when its vCPU stopped: what a hung guest needs
  // first (SSI_LOG=info; symbolise with the kernel's System.map).
  if (auto regs = vcpu_.get_regs(); regs.ok())
    log::get("vcpu")->info("vCPU {}: stopped at rip {:#x} rsp {:#x} rflags {:#x}, {} exits",
                           vcpu_.id(), regs->rip, regs->rsp, regs->rflags, stats().exits);
  return result;
}

// One pass of the loop; the order matters: requests first, then INIT/SIPI,
// then parking states, and only a Runnable vCPU enters the guest.
Result<bool> VcpuRunner::step() {
  bool paused;
  {
    std::lock_guard lock(mu_);
    if (should_leave()) return false;
    paused = pause_requested_;
  }
  if (paused) {
    SSI_TRY(apply(VcpuEvent::kPause));
    park([this] { return !pause_requested_ || should_leave(); });
    if (should_leave()) return false;
    SSI_TRY(apply(VcpuEvent::kResume));
    return true;
  }
  SSI_TRY(handle_startup());
  switch (state()) {
    case VcpuState::kCreated:  // an AP waiting for SIPI
      park([this] { return pause_requested_ || should_leave() || lapic_.has_wake_event(); });
      return true;
    case VcpuState::kHalted:
      park([this] {
        lapic_.update_timer(clock_.now());
        return pause_requested_ || should_leave() || halt_wake_condition();
      });
      if (halt_wake_condition()) SSI_TRY(apply(VcpuEvent::kWake));
      return true;
    default:
      break;
  }
  SSI_TRY(enter_guest());
  return true;
}

Result<void> VcpuRunner::enter_guest() {
  lapic_.update_timer(clock_.now());
  SSI_TRY(deliver_interrupts());
  SSI_TRY(apply(VcpuEvent::kEnterGuest));
  if (work_arrived()) return apply(VcpuEvent::kExitGuest);  // see notify()
  vcpu_.set_cr8(lapic_.cr8());  // KVM loads CR8 from kvm_run at every entry
  auto entered = std::chrono::steady_clock::now();
  auto exit = vcpu_.run();
  auto in_guest = std::chrono::steady_clock::now() - entered;
  {
    std::lock_guard lock(mu_);
    stats_.run_ns += static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(in_guest).count());
  }
  if (!exit.ok()) {
    (void)apply(VcpuEvent::kExitGuest);
    return std::move(exit).error();
  }
  // A `mov cr8` only exits when it lowers CR8 (kvm-amd, KVM_EXIT_SET_TPR);
  // a raise is seen here, at whatever exit comes next. A TPR written through
  // the LAPIC keeps its low nibble as long as CR8 did not change.
  if (exit->cr8 != lapic_.cr8()) lapic_.write_cr8(exit->cr8);
  {
    std::lock_guard lock(mu_);
    ++stats_.exits;
    ++stats_.exits_by_kind[static_cast<std::size_t>(exit->kind)];
    last_ready_ = exit->ready_for_interrupt_injection;
  }
  if (exit->kind == ExitKind::kHlt) return handle_hlt(*exit);
  SSI_TRY(apply(VcpuEvent::kExitGuest));
  return dispatch(*exit);
}

// Checked after the state became Running: anything that arrived before a
// notify() could kick. That includes a LAPIC timer that came due after
// enter_guest's update_timer(): the timer thread's notify() then found the
// vCPU not Running and did not kick, and a guest spinning without exits
// (Linux's BSP waiting for an AP, the AP waiting for jiffies) would never
// see that tick (a 2-node Linux hung in CPU bring-up this way).
bool VcpuRunner::work_arrived() const {
  if (pause_requested_ || should_leave() || lapic_.has_nmi_or_startup() ||
      lapic_.pending_vector() != seen_vector_)
    return true;
  auto deadline = lapic_.timer_deadline();
  return deadline && *deadline <= clock_.now();
}

Result<void> VcpuRunner::handle_hlt(const VcpuExit& exit) {
  {
    std::lock_guard lock(mu_);
    ++stats_.halts;
    halted_if_flag_ = exit.if_flag;
  }
  // An interrupt that is already pending means no sleep at all.
  return apply(halt_wake_condition() ? VcpuEvent::kExitGuest : VcpuEvent::kHalt);
}

bool VcpuRunner::halt_wake_condition() const {
  // NMI, INIT and SIPI wake a halted CPU whatever IF says; a maskable
  // interrupt only if IF was set when it halted.
  if (lapic_.has_nmi_or_startup()) return true;
  return halted_if_flag_ && lapic_.pending_vector().has_value();
}

void VcpuRunner::park(const std::function<bool()>& done) {
  std::unique_lock lock(mu_);
  while (true) {
    lock.unlock();
    bool finished = done();  // may take the LAPIC lock; never under mu_
    auto deadline = lapic_.timer_deadline();
    lock.lock();
    if (finished) return;
    auto wait = std::chrono::duration_cast<Clock::duration>(options_.halt_slice);
    if (deadline) wait = std::clamp(*deadline - clock_.now(), Clock::duration{0}, wait);
    // Bounded: a notify() wakes us early, the slice catches anything missed.
    cv_.wait_for(lock, wait);
  }
}

Result<void> VcpuRunner::handle_startup() {
  while (auto ev = lapic_.take_startup()) {
    if (ev->kind == StartupEvent::Kind::kInit) {
      if (state() != VcpuState::kCreated) SSI_TRY(apply(VcpuEvent::kInit));
      continue;
    }
    if (state() != VcpuState::kCreated) continue;  // SIPI without INIT: ignored
    SSI_TRY(options_.on_sipi(vcpu_, ev->vector));
    SSI_TRY(apply(VcpuEvent::kStart));
  }
  return ok();
}

Result<void> VcpuRunner::deliver_interrupts() {
  if (lapic_.take_nmi()) SSI_TRY(vcpu_.inject_nmi());  // KVM queues NMIs itself
  auto vector = lapic_.pending_vector();
  bool ready;
  {
    std::lock_guard lock(mu_);
    ready = last_ready_;
  }
  if (vector && ready) {
    log::get("vcpu")->trace("vCPU {}: injecting vector {:#x}", vcpu_.id(), *vector);
    SSI_TRY(vcpu_.inject_interrupt(*vector));
    lapic_.acknowledge(*vector);
    std::lock_guard lock(mu_);
    ++stats_.injected;
    last_ready_ = false;  // one injection per entry
    vector = lapic_.pending_vector();
  }
  // Still something pending (not ready, or a second vector): ask KVM to exit
  // as soon as the guest can take it.
  bool want = vector.has_value();
  std::lock_guard lock(mu_);
  seen_vector_ = vector;
  if (want != window_requested_) {
    vcpu_.request_interrupt_window(want);
    window_requested_ = want;
    if (want) ++stats_.windows_requested;
  }
  return ok();
}

Result<void> VcpuRunner::handle_io(const IoExit& io) {
  if (io.count == 1) return io_.pio(vcpu_.id(), io.port, io.is_write, io.data.first(io.size));
  return io_.pio_string(vcpu_.id(), io.port, io.is_write, io.size,
                        io.data.first(static_cast<std::size_t>(io.count) * io.size));
}

void VcpuRunner::handle_msr(VcpuExit& exit) {
  MsrExit& m = exit.msr;
  bool read = exit.kind == ExitKind::kRdmsr;
  if (!Lapic::handles_msr(m.index)) {
    // Unknown to us and to KVM: #GP, as hardware does (guests probe with *_safe).
    log::get("vcpu")->debug("vCPU {}: {} of unhandled MSR {:#x}: #GP", vcpu_.id(),
                            read ? "rdmsr" : "wrmsr", m.index);
    *m.error = 1;
    return;
  }
  // KVM keeps the TSC (the guest or a restore may set it): sample it again
  // so the deadline becomes the right host time.
  if (!read && m.index == kMsrTscDeadline) refresh_tsc_model();
  if (read) {
    auto v = lapic_.msr_read(m.index);
    if (v.ok())
      *m.data = *v;
    else
      *m.error = 1;
  } else if (!lapic_.msr_write(m.index, *m.data).ok()) {
    *m.error = 1;
  } else if (m.index == kMsrApicBase) {
    sync_apic_base();
  }
}

void VcpuRunner::refresh_tsc_model() {
  auto model = read_tsc_model(vcpu_, clock_, tsc_hz_);
  if (model.ok() && model->tsc_hz > 0) {
    tsc_hz_ = model->tsc_hz;  // the rate stays; only the TSC is read again
    lapic_.set_tsc_model(*model);
    return;
  }
  if (std::exchange(tsc_model_warned_, true)) return;
  log::get("vcpu")->warn("vCPU {}: no TSC model for the TSC-deadline timer: {}", vcpu_.id(),
                         model.ok() ? std::string("TSC rate 0") : model.error().to_string());
}

void VcpuRunner::sync_apic_base() {
  // KVM answers CPUID itself and derives CPUID.1:EDX.APIC from its own copy
  // of APIC_BASE.EN (kvm_lapic_set_base, even without in-kernel LAPIC);
  // a host write of the MSR keeps that copy equal to the guest-visible one.
  kvm_msr_entry e{};
  e.index = kMsrApicBase;
  e.data = lapic_.apic_base();
  if (auto r = vcpu_.set_msrs({e}); !r.ok())
    log::get("vcpu")->warn("vCPU {}: APIC_BASE {:#x} not mirrored to KVM: {}", vcpu_.id(), e.data,
                           r.error().to_string());
}

Result<void> VcpuRunner::dispatch(VcpuExit& exit) {
  switch (exit.kind) {
    case ExitKind::kIo:
      return handle_io(exit.io);
    case ExitKind::kMmio: {
      std::uint64_t gpa = exit.mmio.gpa.value();
      if (!lapic_.mmio_hit(gpa)) return io_.mmio(vcpu_.id(), exit.mmio.gpa, exit.mmio.is_write,
                                                 exit.mmio.data);
      if (exit.mmio.is_write)
        lapic_.mmio_write(gpa, exit.mmio.data);
      else
        lapic_.mmio_read(gpa, exit.mmio.data);
      return ok();
    }
    case ExitKind::kRdmsr:
    case ExitKind::kWrmsr:
      handle_msr(exit);
      return ok();
    case ExitKind::kHlt:  // handled in enter_guest (Running -> Halted)
      return ok();
    case ExitKind::kIrqWindowOpen:
    case ExitKind::kInterrupted:
    case ExitKind::kSetTpr:  // TPR already follows exit.cr8 (enter_guest)
      return ok();  // the next pass injects / re-checks requests
    case ExitKind::kInternalError:
      if (options_.on_internal_error) return options_.on_internal_error(vcpu_, exit);
      return make_error(Errc::kUnsupported, fmt::format("vCPU {}: {}", vcpu_.id(), describe(exit)));
    case ExitKind::kShutdown:
    case ExitKind::kFailEntry:
    case ExitKind::kSystemEvent:
    case ExitKind::kUnknown:
      return make_error(Errc::kInternal, fmt::format("vCPU {}: {}", vcpu_.id(), describe(exit)));
  }
  return ok();
}

}  // namespace ssi::vcpu
