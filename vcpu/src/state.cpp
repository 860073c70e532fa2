#include "vcpu/state.hpp"

#include <fmt/format.h>

namespace ssi::vcpu {

std::string_view state_name(VcpuState s) {
  switch (s) {
    case VcpuState::kCreated: return "Created";
    case VcpuState::kRunnable: return "Runnable";
    case VcpuState::kRunning: return "Running";
    case VcpuState::kHalted: return "Halted";
    case VcpuState::kPaused: return "Paused";
    case VcpuState::kMigrating: return "Migrating";
    case VcpuState::kStopped: return "Stopped";
  }
  return "?";
}

std::string_view event_name(VcpuEvent e) {
  switch (e) {
    case VcpuEvent::kStart: return "Start";
    case VcpuEvent::kEnterGuest: return "EnterGuest";
    case VcpuEvent::kExitGuest: return "ExitGuest";
    case VcpuEvent::kHalt: return "Halt";
    case VcpuEvent::kWake: return "Wake";
    case VcpuEvent::kInit: return "Init";
    case VcpuEvent::kPause: return "Pause";
    case VcpuEvent::kResume: return "Resume";
    case VcpuEvent::kBeginMigration: return "BeginMigration";
    case VcpuEvent::kMigrationDone: return "MigrationDone";
    case VcpuEvent::kMigrationFailed: return "MigrationFailed";
    case VcpuEvent::kStop: return "Stop";
  }
  return "?";
}

Result<VcpuState> transition(VcpuState from, VcpuEvent event, VcpuState paused_from) {
  using S = VcpuState;
  using E = VcpuEvent;
  if (from == S::kStopped) {
    // Terminal; stopping twice is harmless (machine exit races an error).
    if (event == E::kStop) return S::kStopped;
  } else if (event == E::kStop) {
    return S::kStopped;
  } else {
    switch (event) {
      case E::kStart:
        if (from == S::kCreated) return S::kRunnable;
        break;
      case E::kEnterGuest:
        if (from == S::kRunnable) return S::kRunning;
        break;
      case E::kExitGuest:
        if (from == S::kRunning) return S::kRunnable;
        break;
      case E::kHalt:
        if (from == S::kRunning) return S::kHalted;
        break;
      case E::kWake:
        if (from == S::kHalted) return S::kRunnable;
        break;
      case E::kInit:
        if (from == S::kRunnable || from == S::kHalted || from == S::kCreated) return S::kCreated;
        break;
      case E::kPause:
        // Running must leave the guest first (the runner kicks it).
        if (from == S::kCreated || from == S::kRunnable || from == S::kHalted) return S::kPaused;
        break;
      case E::kResume:
        if (from == S::kPaused) return paused_from;
        break;
      case E::kBeginMigration:
        if (from == S::kPaused) return S::kMigrating;
        break;
      case E::kMigrationDone:
        if (from == S::kMigrating) return S::kStopped;
        break;
      case E::kMigrationFailed:
        if (from == S::kMigrating) return S::kPaused;
        break;
      case E::kStop:
        break;
    }
  }
  return make_error(Errc::kInvalidArgument,
                    fmt::format("vCPU state {}: event {} is not allowed", state_name(from),
                                event_name(event)));
}

Result<void> VcpuStateMachine::apply(VcpuEvent event) {
  SSI_ASSIGN_OR_RETURN(VcpuState next, transition(state_, event, paused_from_));
  if (event == VcpuEvent::kPause) paused_from_ = state_;
  state_ = next;
  return ok();
}

}  // namespace ssi::vcpu
