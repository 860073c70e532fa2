// The emulated switch's forwarding decision: learn which port each source
// MAC address was seen on; send a frame to its destination's port, or flood
// it (broadcast, multicast, unknown destination) to every other port.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace ssi::lab {

using Mac = std::array<std::uint8_t, 6>;

class SwitchTable {
 public:
  explicit SwitchTable(std::size_t ports) : ports_(ports) {}
  // Output ports for an Ethernet frame received on `in`; empty for a runt.
  std::vector<std::size_t> route(std::size_t in, std::span<const std::byte> frame);

 private:
  std::size_t ports_;
  std::map<Mac, std::size_t> where_;
};

}  // namespace ssi::lab
