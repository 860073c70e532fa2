// The IoHandler of a node without devices: every port-I/O or MMIO access
// becomes a kIoRequest rpc to the device node, and the vCPU waits for the
// reply (reads take its bytes). One access in flight per vCPU, so each
// vCPU's accesses reach the devices in program order.
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
  Result<void> mmio(VcpuId vcpu, Gpa gpa, bool is_write, std::span<std::uint8_t> data) override;

  std::uint64_t forwarded() const { return forwarded_.load(std::memory_order_relaxed); }

 private:
  Result<void> forward(IoAccess access, std::span<std::uint8_t> data);

  NodeId device_node_;
  DataPath& data_;
  std::atomic<std::uint64_t> forwarded_{0};
};

}  // namespace ssi::multinode
