// The IoHandler of a node without devices. An access inside one of the
// board's windows (board_claims: the static layout every node knows)
// becomes one kIoRequest rpc to the device node, and the vCPU waits for the
// reply (reads take its bytes); a whole string instruction (rep ins/outs)
// is one rpc too. An access nobody claims is answered here, as an open bus
// would: reads all-ones, writes dropped, no frame. One access in flight per
// vCPU, so each vCPU's accesses reach the devices in program order.
#pragma once

#include <atomic>

#include "multinode/data_path.hpp"
#include "multinode/wire.hpp"
#include "vcpu/io.hpp"

namespace ssi::multinode {

class ForwardingIo final : public vcpu::IoHandler {
 public:
  ForwardingIo(NodeId device_node, DataPath& data) : device_node_(device_node), data_(data) {}

  Result<void> pio(VcpuId vcpu, std::uint16_t port, bool is_write,
                   std::span<std::uint8_t> data) override;
  Result<void> pio_string(VcpuId vcpu, std::uint16_t port, bool is_write, std::uint8_t size,
                          std::span<std::uint8_t> data) override;
  Result<void> mmio(VcpuId vcpu, Gpa gpa, bool is_write, std::span<std::uint8_t> data) override;

  // rpcs sent, and accesses answered here (nobody claims them).
  std::uint64_t forwarded() const { return forwarded_.load(std::memory_order_relaxed); }
  std::uint64_t unclaimed() const { return unclaimed_.load(std::memory_order_relaxed); }

 private:
  Result<void> access(IoAccess access, std::span<std::uint8_t> data);
  Result<void> forward(const IoAccess& access, std::span<std::uint8_t> data);

  NodeId device_node_;
  DataPath& data_;
  std::atomic<std::uint64_t> forwarded_{0}, unclaimed_{0};
};

}  // namespace ssi::multinode
