// Taking and restoring a checkpoint of a running one-node machine
// (docs/checkpoint.md). The format is ssi/checkpoint.hpp's.
#pragma once

#include <string>

#include "base/result.hpp"
#include "ssi/checkpoint.hpp"
#include "ssi/machine.hpp"

namespace ssi::machine {

// When `ssi run` checkpoints: after `after_s` seconds of running, or when a
// console line contains `on_console`, whichever comes first (0 / empty: not
// that way). The machine is saved to `dir` and then stops (exit code 0).
struct CheckpointTrigger {
  std::string dir;
  double after_s = 0;
  std::string on_console;
  bool enabled() const { return !dir.empty() && (after_s > 0 || !on_console.empty()); }
};

// run_until_exit(), and meanwhile the checkpoint `trigger` asks for: every
// vCPU paused at an exit, RAM + vCPUs + devices written, the machine
// stopped. A failed checkpoint stops the machine with the error.
Result<int> run_with_checkpoint(Machine& machine, const CheckpointTrigger& trigger,
                                const CheckpointConfig& config);


// Before run(), instead of load(): the machine (created from c.config)
// continues where the checkpoint was taken.
Result<void> restore_machine(Machine& machine, const Checkpoint& c);

}  // namespace ssi::machine
