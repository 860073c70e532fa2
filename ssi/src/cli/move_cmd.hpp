// `ssi move ADDR --vcpu K --to B [--json]`: moves vCPU K of the machine
// whose --metrics endpoint is ADDR to node B while it runs
// (docs/mobility.md). Parses its own arguments (cli.cpp hands them over
// unparsed: only that TU includes CLI11).
#pragma once

#include <string>
#include <vector>

namespace ssi::cli {

// Returns the process exit code: 0, or 2 with one line on stderr.
int run_move_command(const std::vector<std::string>& args);

}  // namespace ssi::cli
