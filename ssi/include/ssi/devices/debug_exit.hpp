// Debug-exit ports: how a test kernel ends the run and sets ssi's exit code.
//  - 0xf4 (QEMU isa-debug-exit, iosize 4): writing v exits with (v << 1) | 1,
//    so a kernel written for QEMU behaves the same under ssi.
//  - 0xf8 (ssi): writing v exits with v & 0xff, for a direct code (0 = pass).
// The code goes to the machine-wide vcpu::ExitRequest (first request wins),
// which stops every vCPU.
#pragma once

#include <cstdint>

#include "ssi/boot_info.h"
#include "ssi/devices/io_bus.hpp"
#include "vcpu/io.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kQemuDebugExitPort = SSI_PORT_DEBUG_EXIT;
inline constexpr std::uint64_t kQemuDebugExitPorts = 4;
inline constexpr std::uint64_t kSsiExitPort = SSI_PORT_EXIT;
inline constexpr std::uint64_t kSsiExitPorts = 1;

class DebugExit : public IoDevice {
 public:
  enum class Convention { kQemu, kDirect };
  DebugExit(Convention convention, vcpu::ExitRequest& exit) : convention_(convention), exit_(exit) {}

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Pure: the process exit code a guest write of `value` asks for.
  static int exit_code(Convention convention, std::uint64_t value);

 private:
  Convention convention_;
  vcpu::ExitRequest& exit_;
};

}  // namespace ssi::machine
