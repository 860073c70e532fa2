// The `ssi` binary: parses the command line (cli.cpp, the only TU that
// includes CLI11) and turns errors into one line on stderr + exit code 2.
#include <cstdio>
#include <exception>

#include "base/exit_code.hpp"
#include "cli.hpp"

int main(int argc, char** argv) {
  try {
    return ssi::cli::main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ssi: error: %s\n", e.what());
    return ssi::exit_status(ssi::ExitCode::kError);
  }
}
