// The guest-physical memory map of an ssi machine: where RAM, the boot area,
// the PCI hole and the interrupt controllers live. A plain value, checked for
// overlaps when it is built, so loaders and devices can ask "what is here?".
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;
inline constexpr std::uint64_t kGiB = 1024 * kMiB;

// Fixed layout (x86 PC conventions, so a Linux guest later finds things where
// it expects them).
inline constexpr std::uint64_t kBootAreaEnd = 1 * kMiB;         // [0, 1 MiB): VMM boot structures
inline constexpr std::uint64_t kPciHoleStart = 3 * kGiB;        // RAM above this moves to 4 GiB
inline constexpr std::uint64_t kHighRamStart = 4 * kGiB;
inline constexpr std::uint64_t kIoApicBase = 0xFEC00000;
inline constexpr std::uint64_t kLapicBase = 0xFEE00000;
inline constexpr std::uint64_t kApicWindowSize = 0x1000;
// RAM must be a whole number of 2 MiB pages: the identity map uses 2 MiB pages.
inline constexpr std::uint64_t kRamGranule = 2 * kMiB;
inline constexpr std::uint64_t kMinRam = 4 * kMiB;
inline constexpr std::uint64_t kMaxRam = 64 * kGiB;

enum class RegionKind {
  kRam,       // ordinary guest RAM (backed by the DSM region)
  kBootArea,  // RAM the VMM fills with page tables, GDT, boot info; kernels may not load here
  kPciHole,   // MMIO space below 4 GiB (no RAM)
  kLapic,     // xAPIC registers (trap to the userspace LAPIC)
  kIoApic,
};

std::string_view region_kind_name(RegionKind k);

struct Region {
  std::string_view name;
  RegionKind kind;
  Gpa base;
  std::uint64_t size;

  std::uint64_t end() const { return base.value() + size; }  // exclusive
  bool contains(Gpa a) const { return a.value() >= base.value() && a.value() < end(); }
  // True if [a, a+len) lies inside this region (len may be 0).
  bool contains_range(Gpa a, std::uint64_t len) const;
  bool overlaps(Gpa a, std::uint64_t len) const;
};

class MemoryMap {
 public:
  // The standard PC layout for `ram_bytes` of RAM (a multiple of 2 MiB,
  // kMinRam..kMaxRam). RAM beyond kPciHoleStart continues at 4 GiB.
  static Result<MemoryMap> pc(std::uint64_t ram_bytes);
  // Any set of regions; fails if two of them overlap or one wraps around.
  static Result<MemoryMap> from_regions(std::vector<Region> regions);

  std::span<const Region> regions() const { return regions_; }
  std::uint64_t ram_bytes() const { return ram_bytes_; }
  // Highest guest-physical address + 1 that holds RAM.
  std::uint64_t ram_end() const;

  // The region containing `a`, if any.
  std::optional<Region> find(Gpa a) const;
  // Offset of `a` in the guest RAM backing buffer (RAM regions laid out one
  // after another, boot area included). Fails unless [a, a+len) is all RAM
  // inside one region.
  Result<std::uint64_t> ram_offset(Gpa a, std::uint64_t len) const;

 private:
  std::vector<Region> regions_;  // sorted by base
  std::uint64_t ram_bytes_ = 0;
};

// Parses a size with an optional K/M/G/T suffix (binary units; "64M", "1G",
// "4096"). Fails with a clear message on anything else or on overflow.
Result<std::uint64_t> parse_size(std::string_view text);

}  // namespace ssi::machine
