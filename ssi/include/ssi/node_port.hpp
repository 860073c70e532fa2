// The "which node am I on" port (docs/guests.md, platform): a read of
// kNodePort (any width up to 4) returns the id of the node whose process
// runs the reading vCPU right now. Answered on that node, never forwarded,
// so a vCPU that moved (docs/mobility.md) sees its new node at once.
// Writes are ignored; every other access goes to the wrapped handler.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "vcpu/io.hpp"

namespace ssi::machine {

inline constexpr std::uint16_t kNodePort = 0x5c0;

class NodePortIo final : public vcpu::IoHandler {
 public:
  NodePortIo(vcpu::IoHandler& next, std::uint32_t node) : next_(next), node_(node) {}

  Result<void> pio(VcpuId vcpu, std::uint16_t port, bool is_write,
                   std::span<std::uint8_t> data) override {
    if (port != kNodePort) return next_.pio(vcpu, port, is_write, data);
    if (!is_write) {
      std::fill(data.begin(), data.end(), std::uint8_t{0});
      std::memcpy(data.data(), &node_, std::min(data.size(), sizeof node_));
    }
    return ok();
  }
  Result<void> pio_string(VcpuId vcpu, std::uint16_t port, bool is_write, std::uint8_t size,
                          std::span<std::uint8_t> data) override {
    if (port == kNodePort) return vcpu::IoHandler::pio_string(vcpu, port, is_write, size, data);
    return next_.pio_string(vcpu, port, is_write, size, data);
  }
  Result<void> mmio(VcpuId vcpu, Gpa gpa, bool is_write, std::span<std::uint8_t> data) override {
    return next_.mmio(vcpu, gpa, is_write, data);
  }

 private:
  vcpu::IoHandler& next_;
  std::uint32_t node_;
};

}  // namespace ssi::machine
