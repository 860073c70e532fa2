#include "ssi/devices/debug_exit.hpp"

#include <cstring>

namespace ssi::machine {

bool ExitLatch::set(int code) {
  // One atomic word holds both "set?" and the code, so no reader sees half.
  int expected = kUnset;
  if (code < 0 || !code_.compare_exchange_strong(expected, code, std::memory_order_acq_rel)) {
    return false;
  }
  if (on_exit_) on_exit_(code);
  return true;
}

std::optional<int> ExitLatch::code() const {
  int c = code_.load(std::memory_order_acquire);
  if (c == kUnset) return std::nullopt;
  return c;
}

void DebugExit::read(std::uint64_t /*offset*/, std::span<std::uint8_t> data) {
  std::memset(data.data(), 0, data.size());  // nothing to read; QEMU returns 0 too
}

void DebugExit::write(std::uint64_t /*offset*/, std::span<const std::uint8_t> data) {
  std::uint64_t v = io_value(data);
  int code = convention_ == Convention::kQemu ? static_cast<int>(((v << 1) | 1) & 0xFF)
                                              : static_cast<int>(v & 0xFF);
  latch_.set(code);
}

}  // namespace ssi::machine
