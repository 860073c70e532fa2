// `ssi run`'s checkpoint options (docs/checkpoint.md): --restore DIR,
// --checkpoint-dir DIR with --checkpoint-after SECONDS / --checkpoint-on TEXT.
#pragma once

#include "ssi/run.hpp"

namespace CLI {
class App;
}

namespace ssi::cli {

// Adds the options to `run` (whose --kernel becomes optional: --restore
// replaces it; machine::run() asks for one of the two).
void add_checkpoint_options(CLI::App* run, machine::RunOptions& opts);

}  // namespace ssi::cli
