// Little-endian field access into byte buffers, for the on-disk / in-memory
// formats the loaders parse and build (bzImage, multiboot, ACPI, fw_cfg).
// Callers check bounds first; these only avoid unaligned, aliasing casts.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace ssi::machine::le {

template <typename T>
T get(std::span<const std::uint8_t> b, std::uint64_t off) {
  T v{};
  std::memcpy(&v, b.data() + off, sizeof(T));  // x86 hosts only: already little-endian
  return v;
}

template <typename T>
void put(std::span<std::uint8_t> b, std::uint64_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

}  // namespace ssi::machine::le
