// Which node is home (directory + memory copy) of each page, by address
// range. Either contiguous equal chunks (chunk k -> node k, which is also
// the vNUMA layout the guest sees) or an explicit range table. Fixed, except
// when a node retires: rehome() then gives its ranges to the node that took
// its share (docs/mobility.md, "Retiring a node").
#pragma once

#include <cstdint>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::dsm {

class HomeMap {
 public:
  struct Range {
    PageNo first;  // inclusive
    PageNo end;    // exclusive
    NodeId home;
  };

  // `pages` split into `nodes` contiguous chunks of (nearly) equal size.
  // `home_nodes` (0 = all): only nodes 0..home_nodes-1 get chunks; the
  // others (standby nodes) home nothing until they take a retiring node's.
  static Result<HomeMap> equal_chunks(std::uint64_t pages, std::uint32_t nodes,
                                      std::uint32_t home_nodes = 0);
  // Explicit table: ranges must cover [0, pages) without gaps or overlap.
  static Result<HomeMap> from_ranges(std::uint64_t pages, std::uint32_t nodes,
                                     std::vector<Range> ranges);

  NodeId home_of(PageNo p) const;  // p must be < pages()
  // Every range homed on `from` is homed on `to` from now on; returns how
  // many pages moved (0: `from` homed nothing). `to` must be a known node.
  Result<std::uint64_t> rehome(NodeId from, NodeId to);
  std::uint64_t pages() const { return pages_; }
  std::uint32_t nodes() const { return nodes_; }
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::uint64_t pages_ = 0;
  std::uint32_t nodes_ = 0;
  std::vector<Range> ranges_;  // sorted by first
};

}  // namespace ssi::dsm
