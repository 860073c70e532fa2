#include "ssi/guest_ram.hpp"

#include <fmt/format.h>

namespace ssi::machine {

Result<GuestRam> GuestRam::make(const MemoryMap& map, std::span<std::uint8_t> bytes) {
  if (bytes.size() != map.ram_bytes()) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("guest RAM buffer is {} bytes, the memory map needs {}",
                                  bytes.size(), map.ram_bytes()));
  }
  return GuestRam(map, bytes);
}

Result<std::span<std::uint8_t>> GuestRam::at(Gpa a, std::uint64_t len) const {
  SSI_ASSIGN_OR_RETURN(std::uint64_t off, map_->ram_offset(a, len));
  return bytes_.subspan(off, len);
}

Result<void> GuestRam::write(Gpa a, std::span<const std::uint8_t> data) const {
  SSI_ASSIGN_OR_RETURN(auto dst, at(a, data.size()));
  if (!data.empty()) std::memcpy(dst.data(), data.data(), data.size());
  return ok();
}

Result<void> GuestRam::fill(Gpa a, std::uint64_t len, std::uint8_t value) const {
  SSI_ASSIGN_OR_RETURN(auto dst, at(a, len));
  if (len > 0) std::memset(dst.data(), value, len);
  return ok();
}

}  // namespace ssi::machine
