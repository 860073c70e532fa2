#include "ssi/devices/io_bus.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace ssi::machine {

Result<void> IoBus::add(std::string_view name, std::uint64_t base, std::uint64_t size,
                        IoDevice* device) {
  if (device == nullptr || size == 0 || base + size < base) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("{} bus: bad range for {} at {:#x}", name_, name, base));
  }
  for (const Entry& e : entries_) {
    if (base < e.base + e.size && e.base < base + size) {
      return make_error(Errc::kInvalidArgument,
                        fmt::format("{} bus: {} [{:#x}, {:#x}) overlaps {} [{:#x}, {:#x})", name_,
                                    name, base, base + size, e.name, e.base, e.base + e.size));
    }
  }
  entries_.push_back({std::string(name), base, size, device});
  std::sort(entries_.begin(), entries_.end(),
            [](const Entry& a, const Entry& b) { return a.base < b.base; });
  return ok();
}

const IoBus::Entry* IoBus::find(std::uint64_t addr, std::uint64_t len) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), addr,
                             [](std::uint64_t a, const Entry& e) { return a < e.base; });
  if (it == entries_.begin()) return nullptr;
  const Entry& e = *(it - 1);
  std::uint64_t off = addr - e.base;
  // The whole access must fall inside the device's window.
  if (off >= e.size || len > e.size - off) return nullptr;
  return &e;
}

bool IoBus::read(std::uint64_t addr, std::span<std::uint8_t> data) const {
  const Entry* e = find(addr, data.size());
  if (e == nullptr) {
    std::memset(data.data(), 0xFF, data.size());
    return false;
  }
  e->device->read(addr - e->base, data);
  return true;
}

bool IoBus::write(std::uint64_t addr, std::span<const std::uint8_t> data) const {
  const Entry* e = find(addr, data.size());
  if (e == nullptr) return false;
  e->device->write(addr - e->base, data);
  return true;
}

std::uint64_t io_value(std::span<const std::uint8_t> data) {
  std::uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min<std::size_t>(data.size(), sizeof(v)));
  return v;
}

void set_io_value(std::span<std::uint8_t> data, std::uint64_t value) {
  std::memcpy(data.data(), &value, std::min<std::size_t>(data.size(), sizeof(value)));
}

}  // namespace ssi::machine
