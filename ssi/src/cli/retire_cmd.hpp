// `ssi retire ADDR --node A [--to B] [--no-precopy] [--json]`: retires node A of the
// machine whose --metrics endpoint is ADDR while it runs; node B (default:
// a standby node, `ssi run --standby S`) takes its vCPUs and its share of
// the memory (docs/mobility.md, "Retiring a node"). Parses its own
// arguments (cli.cpp hands them over unparsed: only that TU includes CLI11).
#pragma once

#include <string>
#include <vector>

namespace ssi::cli {

// Returns the process exit code: 0, or 2 with one line on stderr.
int run_retire_command(const std::vector<std::string>& args);

}  // namespace ssi::cli
