#include "ssi/machine_io.hpp"

namespace ssi::machine {

namespace {
bool dispatch(const IoBus& bus, std::uint64_t addr, bool is_write, std::span<std::uint8_t> data) {
  return is_write ? bus.write(addr, data) : bus.read(addr, data);
}
}  // namespace

Result<void> MachineIo::pio(VcpuId /*vcpu*/, std::uint16_t port, bool is_write,
                            std::span<std::uint8_t> data) {
  if (!dispatch(pio_, port, is_write, data)) unclaimed_.fetch_add(1, std::memory_order_relaxed);
  return ok();
}

Result<void> MachineIo::mmio(VcpuId /*vcpu*/, Gpa gpa, bool is_write,
                             std::span<std::uint8_t> data) {
  if (!dispatch(mmio_, gpa.value(), is_write, data)) {
    unclaimed_.fetch_add(1, std::memory_order_relaxed);
  }
  return ok();
}

}  // namespace ssi::machine
