// Which node is home (directory + memory copy) of each page: static, by
// address range. Either contiguous equal chunks (chunk k -> node k, which is
// also the vNUMA layout the guest sees) or an explicit range table.
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
  static Result<HomeMap> equal_chunks(std::uint64_t pages, std::uint32_t nodes);
  // Explicit table: ranges must cover [0, pages) without gaps or overlap.
  static Result<HomeMap> from_ranges(std::uint64_t pages, std::uint32_t nodes,
                                     std::vector<Range> ranges);

  NodeId home_of(PageNo p) const;  // p must be < pages()
  std::uint64_t pages() const { return pages_; }
  std::uint32_t nodes() const { return nodes_; }
  const std::vector<Range>& ranges() const { return ranges_; }

 private:
  std::uint64_t pages_ = 0;
  std::uint32_t nodes_ = 0;
  std::vector<Range> ranges_;  // sorted by first
};

}  // namespace ssi::dsm
