#include "report.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/outcome_json.hpp"

namespace ssi::cluster {
namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string bytes(std::uint64_t v) {
  if (v >= (1ull << 30)) return fmt::format("{:.2f} GiB", v / double(1ull << 30));
  if (v >= (1ull << 20)) return fmt::format("{:.2f} MiB", v / double(1ull << 20));
  if (v >= (1ull << 10)) return fmt::format("{:.1f} KiB", v / 1024.0);
  return fmt::format("{} B", v);
}

std::string duration_ns(std::uint64_t v) {
  if (v >= 10'000'000'000ull) return fmt::format("{:.2f} s", v / 1e9);
  if (v >= 1'000'000) return fmt::format("{:.2f} ms", v / 1e6);
  return fmt::format("{:.1f} us", v / 1e3);
}

// "vcpu3.exits": per-vCPU counters are in the --json file; the table
// keeps each node's totals.
bool is_per_vcpu(const std::string& name) {
  if (name.find("_latency_bucket.") != std::string::npos) return true;  // histograms: metrics only
  return name.starts_with("vcpu") && name.size() > 4 && std::isdigit(static_cast<unsigned char>(name[4]));
}

std::string strip(const std::string& s, std::string_view suffix) {
  return s.substr(0, s.size() - suffix.size());
}

}  // namespace

std::pair<std::string, std::string> human_counter(const std::string& name, std::uint64_t value) {
  if (ends_with(name, "_ns")) return {strip(name, "_ns"), duration_ns(value)};
  if (ends_with(name, "_us")) return {strip(name, "_us"), duration_ns(value * 1000)};
  if (ends_with(name, "_ms")) return {strip(name, "_ms"), duration_ns(value * 1'000'000)};
  if (ends_with(name, "_bytes")) return {strip(name, "_bytes"), bytes(value)};
  if (name.find("_bytes_") != std::string::npos) return {name, bytes(value)};  // page_bytes_sent
  return {name, std::to_string(value)};
}

std::string human_stats_table(const std::vector<coord::NodeReport>& nodes) {
  std::vector<std::string> names;
  for (const auto& n : nodes)
    for (const auto& [name, value] : n.last.stats)
      if (!is_per_vcpu(name) && std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
  if (names.empty()) return "";
  std::size_t width = 8;
  for (const auto& name : names) width = std::max(width, human_counter(name, 0).first.size());
  std::string out = fmt::format("{:<{}}", "counter", width);
  for (const auto& n : nodes) out += fmt::format(" {:>14}", fmt::format("node {}", n.info.id));
  out += "\n";
  for (const auto& name : names) {
    out += fmt::format("{:<{}}", human_counter(name, 0).first, width);
    for (const auto& n : nodes) {
      const auto& stats = n.last.stats;
      auto it = std::find_if(stats.begin(), stats.end(), [&](const auto& kv) { return kv.first == name; });
      out += fmt::format(" {:>14}", it == stats.end() ? "-" : human_counter(name, it->second).second);
    }
    out += "\n";
  }
  return out;
}

int report_run(const RunEnd& end) {
  if (!end.json_path.empty()) {
    RunFacts facts{end.wall, end.signal};
    if (auto w = write_outcome_json(end.json_path, end.config, end.outcome, facts); !w.ok()) {
      std::fprintf(stderr, "ssi: error: %s\n", w.error().to_string().c_str());
      return exit_status(ExitCode::kError);
    }
  }
  if (!end.outcome.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", end.outcome.error().to_string().c_str());
    return exit_status(ExitCode::kError);
  }
  const coord::Outcome& o = end.outcome.value();
  if (end.signal != 0) {
    std::fprintf(stderr, "ssi: interrupted by SIG%s: every node stopped\n", sigabbrev_np(end.signal));
    return signal_exit_status(end.signal);
  }
  // A host workload's result lines are its output (stdout); a guest's
  // output is its console, so the per-node lines are ssi's own (stderr).
  FILE* results = end.config.workload == "guest" ? stderr : stdout;
  for (const auto& n : o.nodes)
    if (!n.last.message.empty())
      std::fprintf(results, "node %u: %s\n", n.info.id.value(), n.last.message.c_str());
  std::fflush(stdout);
  std::string table = human_stats_table(o.nodes);
  if (!table.empty()) std::fprintf(stderr, "\nper-node stats:\n%s", table.c_str());
  // A guest's own exit code is passed on, not an error of ssi's.
  if (o.exit_code != 0 && !o.guest_exit) std::fprintf(stderr, "ssi: error: %s\n", o.message.c_str());
  return o.exit_code;
}

}  // namespace ssi::cluster
