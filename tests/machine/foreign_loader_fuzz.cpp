// libFuzzer: untrusted kernel files through the Linux and multiboot loaders
// (header checks, placement, loading into a small guest RAM). Any crash,
// sanitizer report or out-of-bounds access is a bug; errors are expected.
#include <cstdint>
#include <vector>

#include "ssi/linux_boot.hpp"
#include "ssi/multiboot.hpp"

using namespace ssi::machine;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const MemoryMap map = MemoryMap::pc(32 * kMiB).value();
  static std::vector<std::uint8_t> backing(map.ram_bytes());
  static const GuestRam ram = GuestRam::make(map, backing).value();
  std::span<const std::uint8_t> file(data, size);
  if (auto img = parse_bzimage(file); img.ok()) {
    (void)load_linux(file, *img, file.subspan(0, size / 4), ram, {.cmdline = "console=ttyS0"});
  }
  if (auto img = parse_multiboot(file, map); img.ok()) {
    (void)load_multiboot(file, *img, ram, {.cmdline = "x", .module = file.subspan(0, size / 8)});
  }
  return 0;
}
