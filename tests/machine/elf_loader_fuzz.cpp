// libFuzzer entry: any byte string must be either rejected with an Error or
// parsed into an image that loads inside guest RAM (ASan checks the copy).
#include <cstdint>
#include <vector>

#include "ssi/elf_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ssi::machine;
  static const MemoryMap map = MemoryMap::pc(kMinRam).value();
  static std::vector<std::uint8_t> backing(map.ram_bytes());
  static const GuestRam ram = GuestRam::make(map, backing).value();
  std::span<const std::uint8_t> file(data, size);
  auto image = parse_elf(file, map);
  if (!image.ok()) return 0;
  if (image->segments.empty() || image->end() > map.ram_end()) __builtin_trap();
  if (!load_elf(*image, file, ram).ok()) __builtin_trap();  // a parsed image always loads
  return 0;
}
