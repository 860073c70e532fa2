// A port-I/O or MMIO bus: routes an access to the device whose address range
// contains it. Ranges are registered once at machine assembly (overlaps are
// rejected) and are read-only afterwards, so vCPU threads dispatch without a
// lock; each device serialises its own state.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace ssi::machine {

class IoDevice {
 public:
  virtual ~IoDevice() = default;
  // `offset` is relative to the base the device was registered at; data.size()
  // is the access width (1, 2, 4 or 8).
  virtual void read(std::uint64_t offset, std::span<std::uint8_t> data) = 0;
  virtual void write(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
};

class IoBus {
 public:
  explicit IoBus(std::string name) : name_(std::move(name)) {}

  // Registers `device` (not owned: it must outlive the bus) for [base, base+size).
  Result<void> add(std::string_view name, std::uint64_t base, std::uint64_t size,
                   IoDevice* device);

  // Dispatch; false when no device claims the address (reads then return
  // all-ones, as an open PC bus does, and writes are dropped).
  bool read(std::uint64_t addr, std::span<std::uint8_t> data) const;
  bool write(std::uint64_t addr, std::span<const std::uint8_t> data) const;

 private:
  struct Entry {
    std::string name;
    std::uint64_t base;
    std::uint64_t size;
    IoDevice* device;
  };
  const Entry* find(std::uint64_t addr, std::uint64_t len) const;

  std::string name_;
  std::vector<Entry> entries_;  // sorted by base
};

// Little-endian value of an access (at most 8 bytes), and the reverse.
std::uint64_t io_value(std::span<const std::uint8_t> data);
void set_io_value(std::span<std::uint8_t> data, std::uint64_t value);

}  // namespace ssi::machine
