// The vCPU lifecycle as an explicit state machine (Firecracker vstate style).
// transition() is pure so every edge is unit-tested without KVM; the runner
// keeps one VcpuStateMachine per vCPU and applies events as things happen.
#pragma once

#include <string_view>

#include "base/result.hpp"

namespace ssi::vcpu {

enum class VcpuState {
  kCreated,    // exists, never ran (an AP waiting for SIPI, or after INIT)
  kRunnable,   // may enter the guest
  kRunning,    // inside KVM_RUN
  kHalted,     // guest executed HLT; parked until an interrupt
  kPaused,     // stopped on request (machine pause, before save/migration)
  kMigrating,  // paused and its state is being moved to another node
  kStopped,    // terminal: machine exit, error, or migrated away
};

enum class VcpuEvent {
  kStart,           // Created -> Runnable (BSP at boot; AP on SIPI)
  kEnterGuest,      // Runnable -> Running (about to KVM_RUN)
  kExitGuest,       // Running -> Runnable (KVM_RUN returned)
  kHalt,            // Running -> Halted (HLT exit)
  kWake,            // Halted -> Runnable (interrupt / NMI / SIPI pending)
  kInit,            // any live state -> Created (INIT IPI: wait for SIPI)
  kPause,           // Created/Runnable/Halted -> Paused
  kResume,          // Paused -> the state it was paused from
  kBeginMigration,  // Paused -> Migrating
  kMigrationDone,   // Migrating -> Stopped (the vCPU now lives elsewhere)
  kMigrationFailed, // Migrating -> Paused (state stays here)
  kStop,            // any -> Stopped
};

std::string_view state_name(VcpuState s);
std::string_view event_name(VcpuEvent e);

// Pure. `paused_from` is the state a Paused vCPU returns to on kResume.
// Illegal edges return Errc::kInvalidArgument naming state and event.
Result<VcpuState> transition(VcpuState from, VcpuEvent event,
                             VcpuState paused_from = VcpuState::kRunnable);

// Current state plus what kResume needs to remember. Not thread-safe on its
// own: the runner guards it.
class VcpuStateMachine {
 public:
  VcpuState state() const { return state_; }
  VcpuState paused_from() const { return paused_from_; }
  Result<void> apply(VcpuEvent event);

 private:
  VcpuState state_ = VcpuState::kCreated;
  VcpuState paused_from_ = VcpuState::kRunnable;
};

}  // namespace ssi::vcpu
