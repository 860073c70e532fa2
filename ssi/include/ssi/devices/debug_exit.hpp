// Debug-exit ports: how a test kernel ends the run and sets ssi's exit code.
//  - 0xf4 (QEMU isa-debug-exit, iosize 4): writing v exits with (v << 1) | 1,
//    so a kernel written for QEMU behaves the same under ssi.
//  - 0xf8 (ssi): writing v exits with v & 0xff, for a direct code (0 = pass).
// The first write wins; later writes (other vCPUs racing) are ignored.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>

#include "ssi/boot_info.h"
#include "ssi/devices/io_bus.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kQemuDebugExitPort = SSI_PORT_DEBUG_EXIT;
inline constexpr std::uint64_t kQemuDebugExitPorts = 4;
inline constexpr std::uint64_t kSsiExitPort = SSI_PORT_EXIT;
inline constexpr std::uint64_t kSsiExitPorts = 1;

// The machine's exit status: set once, by a guest port write or the VMM.
class ExitLatch {
 public:
  // Called (once, on the setting thread) when the status is first set: the
  // machine uses it to stop every vCPU.
  explicit ExitLatch(std::function<void(int)> on_exit = {}) : on_exit_(std::move(on_exit)) {}

  // Returns true if this call set the status (codes are >= 0).
  bool set(int code);
  std::optional<int> code() const;

 private:
  std::function<void(int)> on_exit_;
  static constexpr int kUnset = -1;
  std::atomic<int> code_{kUnset};
};

class DebugExit : public IoDevice {
 public:
  enum class Convention { kQemu, kDirect };
  DebugExit(Convention convention, ExitLatch& latch) : convention_(convention), latch_(latch) {}

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

 private:
  Convention convention_;
  ExitLatch& latch_;
};

}  // namespace ssi::machine
