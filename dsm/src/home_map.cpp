#include "dsm/home_map.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace ssi::dsm {

Result<HomeMap> HomeMap::equal_chunks(std::uint64_t pages, std::uint32_t nodes,
                                      std::uint32_t home_nodes) {
  if (home_nodes == 0) home_nodes = nodes;
  if (nodes == 0 || pages == 0 || home_nodes > nodes)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("home map needs pages and nodes ({} pages, {} of {} nodes)",
                                  pages, home_nodes, nodes));
  std::vector<Range> ranges;
  std::uint64_t base = pages / home_nodes, extra = pages % home_nodes, first = 0;
  for (std::uint32_t n = 0; n < home_nodes; ++n) {
    std::uint64_t len = base + (n < extra ? 1 : 0);
    if (len == 0) continue;  // more nodes than pages: some nodes home nothing
    ranges.push_back({PageNo{first}, PageNo{first + len}, NodeId{n}});
    first += len;
  }
  return from_ranges(pages, nodes, std::move(ranges));
}

Result<HomeMap> HomeMap::from_ranges(std::uint64_t pages, std::uint32_t nodes,
                                     std::vector<Range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.first < b.first; });
  std::uint64_t next = 0;
  for (const auto& r : ranges) {
    if (r.first.value() != next || r.end <= r.first || r.home.value() >= nodes)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("home range [{}, {}) -> node {} leaves a gap, overlaps or "
                                    "names an unknown node (expected start {}, {} nodes)",
                                    r.first, r.end, r.home, next, nodes));
    next = r.end.value();
  }
  if (next != pages)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("home ranges cover {} of {} pages", next, pages));
  HomeMap m;
  m.pages_ = pages;
  m.nodes_ = nodes;
  m.ranges_ = std::move(ranges);
  return m;
}

Result<std::uint64_t> HomeMap::rehome(NodeId from, NodeId to) {
  if (to.value() >= nodes_ || from.value() >= nodes_)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("rehome node {} to node {}: {} nodes", from, to, nodes_));
  std::uint64_t moved = 0;
  for (auto& r : ranges_) {
    if (r.home != from) continue;
    r.home = to;
    moved += r.end.value() - r.first.value();
  }
  return moved;
}

NodeId HomeMap::home_of(PageNo p) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), p,
                             [](PageNo v, const Range& r) { return v < r.first; });
  return std::prev(it)->home;
}

}  // namespace ssi::dsm
