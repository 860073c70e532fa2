#include "ssi/memory_map.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include <fmt/format.h>

namespace ssi::machine {

namespace {

bool is_ram(RegionKind k) { return k == RegionKind::kRam || k == RegionKind::kBootArea; }

Error invalid(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

}  // namespace

std::string_view region_kind_name(RegionKind k) {
  switch (k) {
    case RegionKind::kRam: return "ram";
    case RegionKind::kBootArea: return "boot area";
    case RegionKind::kPciHole: return "pci hole";
    case RegionKind::kLapic: return "lapic";
    case RegionKind::kIoApic: return "ioapic";
  }
  return "?";
}

bool Region::contains_range(Gpa a, std::uint64_t len) const {
  if (a.value() < base.value()) return false;
  std::uint64_t off = a.value() - base.value();
  return off <= size && len <= size - off;
}

bool Region::overlaps(Gpa a, std::uint64_t len) const {
  if (len == 0 || size == 0) return false;
  // Both ranges are [start, start+len); compare without overflowing.
  std::uint64_t a_last = a.value() + (len - 1);
  std::uint64_t r_last = base.value() + (size - 1);
  if (a_last < a.value()) a_last = std::numeric_limits<std::uint64_t>::max();
  return a.value() <= r_last && base.value() <= a_last;
}

Result<MemoryMap> MemoryMap::from_regions(std::vector<Region> regions) {
  std::sort(regions.begin(), regions.end(),
            [](const Region& a, const Region& b) { return a.base < b.base; });
  MemoryMap map;
  for (std::size_t i = 0; i < regions.size(); ++i) {
    const Region& r = regions[i];
    if (r.size == 0) return invalid(fmt::format("region {} is empty", r.name));
    if (r.size > std::numeric_limits<std::uint64_t>::max() - r.base.value()) {
      return invalid(fmt::format("region {} wraps around the address space", r.name));
    }
    if (i > 0 && regions[i - 1].overlaps(r.base, r.size)) {
      return invalid(fmt::format("region {} [{:#x}, {:#x}) overlaps {} [{:#x}, {:#x})", r.name,
                                 r.base.value(), r.end(), regions[i - 1].name,
                                 regions[i - 1].base.value(), regions[i - 1].end()));
    }
    if (is_ram(r.kind)) map.ram_bytes_ += r.size;
  }
  map.regions_ = std::move(regions);
  return map;
}

Result<MemoryMap> MemoryMap::pc(std::uint64_t ram_bytes) {
  if (ram_bytes < kMinRam) {
    return invalid(fmt::format("memory size {} MiB is too small (minimum {} MiB)",
                               ram_bytes / kMiB, kMinRam / kMiB));
  }
  if (ram_bytes > kMaxRam) {
    return invalid(fmt::format("memory size {} MiB is too large (maximum {} GiB)",
                               ram_bytes / kMiB, kMaxRam / kGiB));
  }
  if (ram_bytes % kRamGranule != 0) {
    return invalid(fmt::format("memory size {} bytes is not a multiple of 2 MiB", ram_bytes));
  }
  std::uint64_t low = std::min(ram_bytes, kPciHoleStart);
  std::vector<Region> r{
      {"boot", RegionKind::kBootArea, Gpa{0}, kBootAreaEnd},
      {"ram", RegionKind::kRam, Gpa{kBootAreaEnd}, low - kBootAreaEnd},
      {"pci-hole", RegionKind::kPciHole, Gpa{kPciHoleStart}, kIoApicBase - kPciHoleStart},
      {"ioapic", RegionKind::kIoApic, Gpa{kIoApicBase}, kApicWindowSize},
      {"lapic", RegionKind::kLapic, Gpa{kLapicBase}, kApicWindowSize},
  };
  if (ram_bytes > low) {
    r.push_back({"ram-high", RegionKind::kRam, Gpa{kHighRamStart}, ram_bytes - low});
  }
  return from_regions(std::move(r));
}

std::uint64_t MemoryMap::ram_end() const {
  std::uint64_t end = 0;
  for (const Region& r : regions_) {
    if (is_ram(r.kind)) end = std::max(end, r.end());
  }
  return end;
}

std::optional<Region> MemoryMap::find(Gpa a) const {
  for (const Region& r : regions_) {
    if (r.contains(a)) return r;
  }
  return std::nullopt;
}

Result<std::uint64_t> MemoryMap::ram_offset(Gpa a, std::uint64_t len) const {
  std::uint64_t offset = 0;
  for (const Region& r : regions_) {
    if (!is_ram(r.kind)) continue;
    if (r.contains_range(a, len) && (len > 0 || r.contains(a))) {
      return offset + (a.value() - r.base.value());
    }
    offset += r.size;
  }
  return make_error(Errc::kOutOfRange,
                    fmt::format("[{:#x}, +{:#x}) is not inside guest RAM", a.value(), len));
}

Result<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc{} || ptr == first) {
    return invalid(fmt::format("invalid size '{}' (expected e.g. 64M, 1G, 4096)", text));
  }
  std::string_view suffix(ptr, static_cast<std::size_t>(last - ptr));
  unsigned shift = 0;
  if (suffix == "" || suffix == "B") {
    shift = 0;
  } else if (suffix == "K" || suffix == "k" || suffix == "KiB") {
    shift = 10;
  } else if (suffix == "M" || suffix == "m" || suffix == "MiB") {
    shift = 20;
  } else if (suffix == "G" || suffix == "g" || suffix == "GiB") {
    shift = 30;
  } else if (suffix == "T" || suffix == "t" || suffix == "TiB") {
    shift = 40;
  } else {
    return invalid(fmt::format("invalid size '{}' (unknown suffix '{}'; use K, M, G or T)", text,
                               suffix));
  }
  if (shift > 0 && value > (std::numeric_limits<std::uint64_t>::max() >> shift)) {
    return invalid(fmt::format("size '{}' is too large", text));
  }
  return value << shift;
}

}  // namespace ssi::machine
