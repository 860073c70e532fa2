#include "ssi/e820.hpp"

namespace ssi::machine {

std::vector<E820Entry> e820_map(const MemoryMap& map) {
  std::vector<E820Entry> out{
      {0, kAcpiGpa, E820Type::kRam},
      {kAcpiGpa, kAcpiSize, E820Type::kAcpi},
  };
  for (const Region& r : map.regions()) {
    if (r.kind == RegionKind::kRam && r.base.value() >= kBootAreaEnd) {
      out.push_back({r.base.value(), r.size, E820Type::kRam});
    }
  }
  return out;
}

std::uint64_t low_ram_end(const MemoryMap& map) {
  auto r = map.find(Gpa{kBootAreaEnd});
  return r && r->kind == RegionKind::kRam ? r->end() : kBootAreaEnd;
}

}  // namespace ssi::machine
