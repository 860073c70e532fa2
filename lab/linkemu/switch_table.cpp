#include "switch_table.hpp"

#include <cstring>

namespace ssi::lab {

std::vector<std::size_t> SwitchTable::route(std::size_t in, std::span<const std::byte> frame) {
  if (frame.size() < 14 || in >= ports_) return {};
  Mac dst, src;
  std::memcpy(dst.data(), frame.data(), 6);
  std::memcpy(src.data(), frame.data() + 6, 6);
  if (!(src[0] & 1)) where_[src] = in;  // a multicast source is bogus: do not learn it
  if (!(dst[0] & 1))
    if (auto it = where_.find(dst); it != where_.end())
      return it->second == in ? std::vector<std::size_t>{} : std::vector<std::size_t>{it->second};
  std::vector<std::size_t> out;
  for (std::size_t p = 0; p < ports_; ++p)
    if (p != in) out.push_back(p);
  return out;
}

}  // namespace ssi::lab
