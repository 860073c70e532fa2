// Where foreign guests (Linux, multiboot kernels) find the VMM's data in low
// memory, and the BIOS-style memory map (e820) ssi reports to them. Shared by
// the Linux and multiboot loaders so both describe the same machine.
//
// Low 1 MiB for foreign guests (the ELF test-kernel boot area, boot.hpp, uses
// the same pages for its GDT/TSS/boot info/page tables; these fit around them):
//   0x40E             BIOS data area word: EBDA segment -> the ACPI tables
//   0x7000            boot parameters page (Linux zero page / multiboot info)
//   0x96000..0x98000  kernel command line (8 KiB)
//   0x98000..0xA0000  ACPI tables (reported as ACPI data in e820)
#pragma once

#include <cstdint>
#include <vector>

#include "ssi/boot.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kBootParamsGpa = 0x7000;
inline constexpr std::uint64_t kBootParamsSize = 0x1000;
inline constexpr std::uint64_t kCmdlineGpa = 0x96000;
inline constexpr std::uint64_t kCmdlineMax = 0x2000;  // bytes, NUL included
inline constexpr std::uint64_t kAcpiGpa = 0x98000;
inline constexpr std::uint64_t kAcpiSize = 0x8000;
inline constexpr std::uint64_t kLowRamEnd = 0xA0000;     // VGA hole and ROMs above
inline constexpr std::uint64_t kBdaEbdaSegment = 0x40E;  // BIOS data area: EBDA segment (u16)

// The largest boot-area page tables (kMaxRam) end below the command line.
static_assert(kPageTablesGpa + 2 * (2 + kMaxRam / kGiB) * 4096 <= kCmdlineGpa);
static_assert(kBootInfoGpa + sizeof(ssi_boot_info) <= kBootParamsGpa);
static_assert(kBootParamsGpa + kBootParamsSize <= kTrampolineGpa);

// e820 types (ACPI spec, "Address Range Types").
enum class E820Type : std::uint32_t { kRam = 1, kReserved = 2, kAcpi = 3, kNvs = 4 };

struct E820Entry {
  std::uint64_t addr = 0;
  std::uint64_t size = 0;
  E820Type type = E820Type::kRam;
};

// Usable RAM below the ACPI tables, the ACPI tables, then every RAM region of
// `map` from 1 MiB up. [0xA0000, 1 MiB) is left out (legacy hole).
std::vector<E820Entry> e820_map(const MemoryMap& map);

// End of the RAM region that starts at 1 MiB (a 32-bit guest's "upper memory").
std::uint64_t low_ram_end(const MemoryMap& map);

}  // namespace ssi::machine
