#pragma once

namespace ssi::cli {

// Parses argv and runs the chosen subcommand; returns the process exit code.
int main(int argc, char** argv);

}  // namespace ssi::cli
