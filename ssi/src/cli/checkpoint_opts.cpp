#include "checkpoint_opts.hpp"

#include <CLI/CLI.hpp>

namespace ssi::cli {

void add_checkpoint_options(CLI::App* run, machine::RunOptions& opts) {
  run->get_option("--kernel")->required(false);
  run->add_option("--restore", opts.restore_dir,
                  "Continue the machine checkpointed in this directory (instead of --kernel)")
      ->check(CLI::ExistingDirectory);
  run->add_option("--checkpoint-dir", opts.checkpoint_dir,
                  "Save the machine here (with --checkpoint-after or --checkpoint-on), then stop");
  run->add_option("--checkpoint-after", opts.checkpoint_after_s,
                  "Checkpoint after this many seconds of running")
      ->check(CLI::Range(0.0, 31536000.0));
  run->add_option("--checkpoint-on", opts.checkpoint_on,
                  "Checkpoint when a console line contains this text");
}

}  // namespace ssi::cli
