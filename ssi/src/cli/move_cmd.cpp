#include "move_cmd.hpp"

#include <cstdio>
#include <optional>

#include "base/exit_code.hpp"
#include "uint_arg.hpp"
#include "cluster/move_queue.hpp"

namespace ssi::cli {
namespace {

int usage(const char* why) {
  std::fprintf(stderr, "ssi: error: move: %s (usage: ssi move ADDR --vcpu K --to NODE [--json])\n", why);
  return exit_status(ExitCode::kError);
}

}  // namespace

int run_move_command(const std::vector<std::string>& args) {
  std::string address;
  std::optional<std::uint32_t> vcpu, to;
  bool json = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--vcpu" || a == "--to") {
      if (i + 1 >= args.size()) return usage("a number must follow --vcpu and --to");
      auto v = parse_uint_arg(args[++i]);
      if (!v) return usage("--vcpu and --to take a number");
      (a == "--vcpu" ? vcpu : to) = v;
    } else if (address.empty() && !a.starts_with("-")) {
      address = a;
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (address.empty() || !vcpu || !to) return usage("ADDR, --vcpu and --to are required");
  return cluster::run_move_command(address, *vcpu, *to, json);
}

}  // namespace ssi::cli
