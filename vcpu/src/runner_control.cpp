// VcpuRunner's thread-safe controls (notify, pause/resume, stop) and the
// migration entry points (save/restore while parked). The loop is runner.cpp.
#include <fmt/format.h>

#include "vcpu/runner.hpp"

namespace ssi::vcpu {

void VcpuRunner::notify() {
  bool running;
  {
    std::lock_guard lock(mu_);
    running = sm_.state() == VcpuState::kRunning;
    if (running) ++stats_.kicks;
  }
  cv_.notify_all();  // wakes HLT / Created / Paused parking
  // Kick only a vCPU that is (about to be) in KVM_RUN. No race: the runner
  // sets Running under mu_ and then re-checks for new work (enter_guest), so
  // work published before we saw "not Running" is found by that re-check.
  if (running && options_.kick_on_notify) vcpu_.kick();
}

void VcpuRunner::pause() {
  {
    std::lock_guard lock(mu_);
    pause_requested_ = true;
  }
  notify();
}

bool VcpuRunner::wait_paused(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return sm_.state() == VcpuState::kPaused || sm_.state() == VcpuState::kStopped;
  });
}

void VcpuRunner::resume() {
  {
    std::lock_guard lock(mu_);
    pause_requested_ = false;
  }
  cv_.notify_all();
}

void VcpuRunner::stop() {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  notify();
}

Result<CpuState> VcpuRunner::save_state() {
  VcpuState from;
  {
    std::lock_guard lock(mu_);
    if (sm_.state() != VcpuState::kPaused)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("vCPU {}: save_state needs Paused, not {}", vcpu_.id(),
                                    state_name(sm_.state())));
    from = sm_.paused_from();
  }
  SSI_ASSIGN_OR_RETURN(CpuState s, save_cpu_state(vcpu_, lapic_));
  s.mp_state.mp_state = from == VcpuState::kHalted    ? KVM_MP_STATE_HALTED
                        : from == VcpuState::kCreated ? KVM_MP_STATE_INIT_RECEIVED
                                                      : KVM_MP_STATE_RUNNABLE;
  return s;
}

Result<void> VcpuRunner::restore_state(const CpuState& s) {
  {
    std::lock_guard lock(mu_);
    if (sm_.state() != VcpuState::kCreated)
      return make_error(Errc::kInvalidArgument, "restore_state must come before run()");
  }
  SSI_TRY(restore_cpu_state(vcpu_, lapic_, s));
  std::lock_guard lock(mu_);
  resume_halted_ = s.mp_state.mp_state == KVM_MP_STATE_HALTED;
  resume_waiting_ = s.mp_state.mp_state == KVM_MP_STATE_INIT_RECEIVED;
  halted_if_flag_ = (s.regs.rflags & 0x200) != 0;  // IF decides what wakes it
  // A guest sitting in HLT with IF=1 can take an interrupt at once, as its
  // HLT exit said on the old node; otherwise wait for the first exit.
  last_ready_ = resume_halted_ && halted_if_flag_;
  return ok();
}

}  // namespace ssi::vcpu
