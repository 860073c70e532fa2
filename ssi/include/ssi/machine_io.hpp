// The machine's vcpu::IoHandler: port I/O and (non-LAPIC) MMIO from every
// vCPU of this node go to the port bus or the MMIO bus. Unclaimed accesses
// read as all-ones and are counted (a PC ignores them too; the count helps
// debug a guest poking the wrong port).
#pragma once

#include <atomic>
#include <cstdint>

#include "ssi/devices/io_bus.hpp"
#include "vcpu/io.hpp"

namespace ssi::machine {

class MachineIo final : public vcpu::IoHandler {
 public:
  MachineIo(const IoBus& pio, const IoBus& mmio) : pio_(pio), mmio_(mmio) {}

  Result<void> pio(VcpuId vcpu, std::uint16_t port, bool is_write,
                   std::span<std::uint8_t> data) override;
  Result<void> mmio(VcpuId vcpu, Gpa gpa, bool is_write, std::span<std::uint8_t> data) override;

  std::uint64_t unclaimed() const { return unclaimed_.load(std::memory_order_relaxed); }

 private:
  const IoBus& pio_;
  const IoBus& mmio_;
  std::atomic<std::uint64_t> unclaimed_{0};
};

}  // namespace ssi::machine
