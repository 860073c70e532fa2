#include "retire_cmd.hpp"

#include <cstdio>
#include <optional>

#include "base/exit_code.hpp"
#include "uint_arg.hpp"
#include "cluster/retire_orders.hpp"

namespace ssi::cli {
namespace {

int usage(const char* why) {
  std::fprintf(stderr, "ssi: error: retire: %s (usage: ssi retire ADDR --node A [--to B] [--no-precopy] [--json])\n", why);
  return exit_status(ExitCode::kError);
}

}  // namespace

int run_retire_command(const std::vector<std::string>& args) {
  std::string address;
  std::optional<std::uint32_t> node, to;
  bool json = false, precopy = true;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--no-precopy") {
      precopy = false;
    } else if (a == "--node" || a == "--to") {
      if (i + 1 >= args.size()) return usage("a number must follow --node and --to");
      auto v = parse_uint_arg(args[++i]);
      if (!v) return usage("--node and --to take a number");
      (a == "--node" ? node : to) = v;
    } else if (address.empty() && !a.starts_with("-")) {
      address = a;
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (address.empty() || !node) return usage("ADDR and --node are required");
  return cluster::run_retire_command(address, *node, to, precopy, json);
}

}  // namespace ssi::cli
