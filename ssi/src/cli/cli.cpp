// Command-line front end. Only this TU includes CLI11 (it is slow to
// compile); each subcommand fills a plain options struct and calls into the
// library code that does the work.
#include "cli.hpp"

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "ssi/version.hpp"

namespace ssi::cli {

int main(int argc, char** argv) {
  CLI::App app{"ssi: one virtual machine across many hosts (KVM + distributed shared memory)"};
  app.set_version_flag("--version", std::string(ssi::version()));
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);

  auto* version_cmd = app.add_subcommand("version", "Print the version");
  version_cmd->callback([] { std::printf("ssi %s\n", std::string(ssi::version()).c_str()); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return 0;
}

}  // namespace ssi::cli
