// A view of guest RAM as the VMM sees it: one host buffer holding every RAM
// region of a MemoryMap back to back. Loaders write through it by guest-
// physical address; every access is bounds-checked against the map.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

class GuestRam {
 public:
  // `bytes` must be exactly map.ram_bytes() long (checked by make()).
  static Result<GuestRam> make(const MemoryMap& map, std::span<std::uint8_t> bytes);

  const MemoryMap& map() const { return *map_; }
  std::span<std::uint8_t> bytes() const { return bytes_; }

  // The host bytes for [a, a+len): fails unless they are RAM in one region.
  Result<std::span<std::uint8_t>> at(Gpa a, std::uint64_t len) const;
  Result<void> write(Gpa a, std::span<const std::uint8_t> data) const;
  Result<void> fill(Gpa a, std::uint64_t len, std::uint8_t value) const;

  template <typename T>
  Result<void> write_value(Gpa a, const T& v) const {
    return write(a, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&v),
                                                  sizeof(T)));
  }
  template <typename T>
  Result<T> read_value(Gpa a) const {
    SSI_ASSIGN_OR_RETURN(auto s, at(a, sizeof(T)));
    T v;
    std::memcpy(&v, s.data(), sizeof(T));
    return v;
  }

 private:
  GuestRam(const MemoryMap& map, std::span<std::uint8_t> bytes) : map_(&map), bytes_(bytes) {}
  const MemoryMap* map_;
  std::span<std::uint8_t> bytes_;
};

}  // namespace ssi::machine
