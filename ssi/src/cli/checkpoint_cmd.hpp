// `ssi checkpoint ADDR --dir DIR [--continue] [--json]`: checkpoints the
// running machine whose --metrics endpoint is ADDR (docs/checkpoint.md);
// without --continue the machine stops after the save. Parses its own
// arguments (cli.cpp hands them over unparsed: only that TU includes CLI11).
#pragma once

#include <string>
#include <vector>

namespace ssi::cli {

// Returns the process exit code: 0, or 2 with one line on stderr.
int run_checkpoint_command(const std::vector<std::string>& args);

}  // namespace ssi::cli
