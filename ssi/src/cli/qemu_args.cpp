#include "qemu_args.hpp"

#include <charconv>
#include <optional>

#include <fmt/format.h>

#include "ssi/memory_map.hpp"

namespace ssi::cli {
namespace {

// Far above any vCPU limit; only keeps the topology product from overflowing
// (the run's own check names the real limit).
constexpr std::uint64_t kMaxSmp = 1 << 16;

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::vector<std::string> qemu_aliases(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-smp" || a == "-kernel" || a == "-initrd" || a == "-append" || a == "-nographic" ||
        a == "-serial") {
      args.push_back("-" + std::string(a));
    } else {
      args.emplace_back(a);
    }
  }
  return args;
}

Result<std::uint32_t> parse_smp(std::string_view text) {
  std::optional<std::uint64_t> cpus, maxcpus;
  std::uint64_t topology = 1;
  bool has_topology = false;
  std::string_view rest = text;
  for (bool first = true; ; first = false) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    auto eq = item.find('=');
    std::string_view key = eq == std::string_view::npos ? "" : item.substr(0, eq);
    auto value = number(eq == std::string_view::npos ? item : item.substr(eq + 1));
    if (!value || *value == 0 || *value > kMaxSmp || (key.empty() && !first))
      return bad(fmt::format("'{}': '{}' is not N or KEY=N with 1 <= N <= {}", text, item,
                             kMaxSmp));
    if (key.empty() || key == "cpus") {
      cpus = *value;
    } else if (key == "maxcpus") {
      maxcpus = *value;
    } else if (key == "sockets" || key == "dies" || key == "clusters" || key == "cores" ||
               key == "threads") {
      topology *= *value;
      has_topology = true;
    } else {
      return bad(fmt::format("'{}': unknown key '{}' (known: cpus, maxcpus, sockets, dies, "
                             "clusters, cores, threads)", text, key));
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (!cpus) cpus = maxcpus ? *maxcpus : topology;
  if (maxcpus && *maxcpus != *cpus)
    return bad(fmt::format("'{}': maxcpus must equal cpus (ssi has no CPU hotplug)", text));
  if (has_topology && topology != *cpus)
    return bad(fmt::format("'{}': sockets*cores*threads = {} is not the {} CPUs asked for",
                           text, topology, *cpus));
  if (*cpus > kMaxSmp) return bad(fmt::format("'{}': {} CPUs is too many", text, *cpus));
  return static_cast<std::uint32_t>(*cpus);
}

Result<std::uint64_t> parse_mem(std::string_view text) {
  if (number(text)) return machine::parse_size(std::string(text) + "M");
  return machine::parse_size(text);
}

}  // namespace ssi::cli
