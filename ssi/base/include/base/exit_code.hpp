// The exit statuses ssi itself chooses, for every command (run, demo, node,
// coordinator, stats, ssi-linkemu). A guest's own status (written to the
// debug-exit port) passes through unchanged and may take any value 0..255;
// these are the values ssi picks when it ends a run for a reason of its own.
#pragma once

namespace ssi {

enum class ExitCode : int {
  kOk = 0,
  // A check failed: a vCPU stopped with an error, a workload's result was
  // wrong, ssi-linkemu's switch failed.
  kFailed = 1,
  // Nothing ran or the run could not be set up: a usage error, a refused
  // configuration, a missing device (one line on stderr).
  kError = 2,
  // A node was lost (died, or stopped answering), or the machine was stopped
  // while it was still running because of that.
  kNodeLost = 3,
  // The launcher's child could not exec the node binary (the shell's 127).
  kExecFailed = 127,
};

// Interrupted by signal `sig`: 128 + sig, as a shell reports it.
inline constexpr int kSignalBase = 128;

constexpr int exit_status(ExitCode c) { return static_cast<int>(c); }
constexpr int signal_exit_status(int sig) { return kSignalBase + sig; }

}  // namespace ssi
