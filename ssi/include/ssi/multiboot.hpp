// Multiboot v1 loader (the GNU Multiboot 0.6.96 specification, as QEMU's
// -kernel implements it) so that freestanding x86 test kernels written for
// QEMU run unchanged: header search in the first 8 KiB, a 32-bit ELF or the
// a.out kludge (header flag 16), the information block (mem_lower/upper,
// mmap from ssi's e820 map, command line, one module from --initrd, boot
// loader name) and the 32-bit protected-mode entry state (eax = 0x2BADB002,
// ebx = info, flat 4 GiB segments, paging off, interrupts off).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "ssi/boot.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

namespace multiboot {
inline constexpr std::uint32_t kHeaderMagic = 0x1BADB002;
inline constexpr std::uint32_t kBootMagic = 0x2BADB002;  // in eax at entry
inline constexpr std::uint64_t kSearchBytes = 8192;
inline constexpr std::uint32_t kFlagPageAlign = 1u << 0;
inline constexpr std::uint32_t kFlagMemInfo = 1u << 1;
inline constexpr std::uint32_t kFlagVideo = 1u << 2;
inline constexpr std::uint32_t kFlagAout = 1u << 16;
// Info block flags ssi sets.
inline constexpr std::uint32_t kInfoMem = 1u << 0, kInfoCmdline = 1u << 2, kInfoMods = 1u << 3,
                               kInfoMmap = 1u << 6, kInfoLoaderName = 1u << 9;
// Selectors of the flat 32-bit GDT ssi writes for the entry.
inline constexpr std::uint16_t kCodeSelector = 0x08, kDataSelector = 0x10;
}  // namespace multiboot

struct MultibootSegment {
  std::uint64_t gpa = 0;
  std::uint64_t file_offset = 0;
  std::uint64_t file_size = 0;
  std::uint64_t mem_size = 0;  // >= file_size; the rest is zeroed
};

struct MultibootImage {
  std::uint32_t header_offset = 0;
  std::uint32_t flags = 0;
  bool aout_kludge = false;
  std::uint32_t entry = 0;
  std::vector<MultibootSegment> segments{};
  std::uint64_t end = 0;  // first byte after the highest segment
};

// Offset of a valid multiboot header (magic + checksum) in the first 8 KiB.
std::optional<std::uint32_t> find_multiboot_header(std::span<const std::uint8_t> file);

// Validates the header and the ELF32 program headers (or the a.out-kludge
// addresses) against `map`: everything loads into RAM above 1 MiB and below
// 4 GiB, the entry lies in a loaded segment.
Result<MultibootImage> parse_multiboot(std::span<const std::uint8_t> file, const MemoryMap& map);

struct MultibootConfig {
  std::string_view cmdline{};
  std::span<const std::uint8_t> module{};  // empty: no module
  std::string_view module_string{};        // the module's command line (its file name)
};

struct MultibootLayout {
  std::uint32_t entry = 0;
  std::uint32_t info = 0;
  std::uint32_t module_start = 0, module_end = 0;  // 0 if no module
};

// Loads the kernel, the module (page aligned after the kernel), the command
// line, the info block and the flat GDT into guest RAM.
Result<MultibootLayout> load_multiboot(std::span<const std::uint8_t> file,
                                       const MultibootImage& image, const GuestRam& ram,
                                       const MultibootConfig& config);

// The BSP at the kernel entry: protected mode, paging off, flat segments
// (cs = 0x08, data = 0x10), eax = 0x2BADB002, ebx = info block.
EntryState multiboot_entry_state(const MultibootLayout& layout);

}  // namespace ssi::machine
