#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "coordinator/coordinator.hpp"

namespace ssi::coord {

// One row per counter name, one column per node, in first-seen order.
std::string format_stats_table(const std::vector<NodeReport>& nodes) {
  std::vector<std::string> names;
  for (const auto& n : nodes)
    for (const auto& [name, value] : n.last.stats)
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  if (names.empty()) return "";
  std::size_t width = 8;
  for (const auto& name : names) width = std::max(width, name.size());
  std::string out = fmt::format("{:<{}}", "counter", width);
  for (const auto& n : nodes) out += fmt::format(" {:>14}", fmt::format("node {}", n.info.id));
  out += "\n";
  for (const auto& name : names) {
    out += fmt::format("{:<{}}", name, width);
    for (const auto& n : nodes) {
      auto it = std::find_if(n.last.stats.begin(), n.last.stats.end(),
                             [&](const auto& kv) { return kv.first == name; });
      out += it == n.last.stats.end() ? fmt::format(" {:>14}", "-")
                                      : fmt::format(" {:>14}", it->second);
    }
    out += "\n";
  }
  return out;
}

}  // namespace ssi::coord
