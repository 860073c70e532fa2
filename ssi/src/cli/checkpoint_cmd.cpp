#include "checkpoint_cmd.hpp"

#include <unistd.h>

#include <climits>
#include <cstdio>

#include "base/exit_code.hpp"
#include "cluster/checkpoint_orders.hpp"

namespace ssi::cli {
namespace {

int usage(const std::string& why) {
  std::fprintf(stderr, "ssi: error: checkpoint: %s (usage: ssi checkpoint ADDR --dir DIR [--continue] [--json])\n",
               why.c_str());
  return exit_status(ExitCode::kError);
}

// The machine's node 0 writes it, from its own working directory.
std::string absolute(const std::string& dir) {
  if (dir.starts_with("/")) return dir;
  char cwd[PATH_MAX];
  if (!::getcwd(cwd, sizeof cwd)) return dir;
  return std::string(cwd) + "/" + dir;
}

}  // namespace

int run_checkpoint_command(const std::vector<std::string>& args) {
  std::string address, dir;
  bool resume = false, json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--continue") {
      resume = true;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--dir") {
      if (i + 1 >= args.size() || args[i + 1].empty()) return usage("a directory must follow --dir");
      dir = args[++i];
    } else if (address.empty() && !a.starts_with("-")) {
      address = a;
    } else {
      return usage("unknown argument " + a);
    }
  }
  if (address.empty() || dir.empty()) return usage("ADDR and --dir are required");
  return cluster::run_checkpoint_command(address, absolute(dir), resume, json);
}

}  // namespace ssi::cli
