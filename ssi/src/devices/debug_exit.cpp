#include "ssi/devices/debug_exit.hpp"

#include <cstring>

namespace ssi::machine {

int DebugExit::exit_code(Convention convention, std::uint64_t value) {
  // A process exit status has 8 bits; QEMU's exit((v << 1) | 1) truncates the same way.
  return convention == Convention::kQemu ? static_cast<int>(((value << 1) | 1) & 0xFF)
                                         : static_cast<int>(value & 0xFF);
}

void DebugExit::read(std::uint64_t /*offset*/, std::span<std::uint8_t> data) {
  std::memset(data.data(), 0, data.size());  // nothing to read; QEMU returns 0 too
}

void DebugExit::write(std::uint64_t /*offset*/, std::span<const std::uint8_t> data) {
  exit_.request(exit_code(convention_, io_value(data)));
}

}  // namespace ssi::machine
