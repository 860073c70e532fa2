// Linux x86-64 boot protocol (Documentation/arch/x86/boot.rst): parse and
// check a bzImage's setup header, place the protected-mode kernel, the initrd
// and the command line, fill boot_params (the "zero page") with the e820 map
// and the ACPI RSDP address, and enter the kernel's 64-bit entry point
// (load address + 0x200) with the boot builder's identity page tables and
// rsi = boot_params. The image is untrusted: every field is checked, every
// failure is one clear line (Errc::kInvalidArgument).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "ssi/boot.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

// Setup-header constants the loader and its tests share.
namespace bzimage {
inline constexpr std::uint64_t kSetupSects = 0x1F1;
inline constexpr std::uint64_t kBootFlag = 0x1FE;        // 0xAA55
inline constexpr std::uint64_t kHeaderMagicOff = 0x202;  // "HdrS"
inline constexpr std::uint32_t kHeaderMagic = 0x53726448;
inline constexpr std::uint64_t kVersion = 0x206;
inline constexpr std::uint64_t kTypeOfLoader = 0x210;
inline constexpr std::uint64_t kLoadflags = 0x211;
inline constexpr std::uint64_t kRamdiskImage = 0x218;
inline constexpr std::uint64_t kRamdiskSize = 0x21C;
inline constexpr std::uint64_t kCmdLinePtr = 0x228;
inline constexpr std::uint64_t kInitrdAddrMax = 0x22C;
inline constexpr std::uint64_t kKernelAlignment = 0x230;
inline constexpr std::uint64_t kRelocatable = 0x234;
inline constexpr std::uint64_t kXloadflags = 0x236;
inline constexpr std::uint64_t kCmdlineSize = 0x238;
inline constexpr std::uint64_t kPrefAddress = 0x258;
inline constexpr std::uint64_t kInitSize = 0x260;
inline constexpr std::uint64_t kHeaderMinEnd = 0x268;  // protocol 2.12 header end
inline constexpr std::uint8_t kLoadedHigh = 0x01;
inline constexpr std::uint16_t kXlfKernel64 = 0x01;
inline constexpr std::uint16_t kMinVersion = 0x020C;
// boot_params fields outside the setup header.
inline constexpr std::uint64_t kAcpiRsdpAddr = 0x070;
inline constexpr std::uint64_t kExtRamdiskImage = 0x0C0;
inline constexpr std::uint64_t kExtRamdiskSize = 0x0C4;
inline constexpr std::uint64_t kExtCmdLinePtr = 0x0C8;
inline constexpr std::uint64_t kE820Entries = 0x1E8;
inline constexpr std::uint64_t kE820Table = 0x2D0;
inline constexpr std::uint32_t kE820Max = 128;
inline constexpr std::uint64_t kEntry64Offset = 0x200;
}  // namespace bzimage

struct BzImage {
  std::uint16_t version = 0;
  std::uint8_t loadflags = 0;
  std::uint16_t xloadflags = 0;
  bool relocatable = false;
  std::uint32_t kernel_alignment = 0;
  std::uint64_t pref_address = 0;
  std::uint32_t init_size = 0;        // memory the kernel needs from its load address
  std::uint32_t initrd_addr_max = 0;  // highest address the initrd may occupy
  std::uint32_t cmdline_size = 0;     // longest command line, NUL excluded
  std::uint64_t setup_bytes = 0;      // file offset of the protected-mode kernel
  std::uint64_t header_end = 0;       // file offset just past the setup header
  std::uint64_t kernel_bytes = 0;     // protected-mode kernel size in the file
};

// True if `file` carries the bzImage signatures (0xAA55 and "HdrS"); used to
// pick a loader before the full checks.
bool looks_like_bzimage(std::span<const std::uint8_t> file);

// Validates the setup header: signatures, protocol >= 2.12, LOADED_HIGH,
// 64-bit entry (XLF_KERNEL_64), sizes inside the file.
Result<BzImage> parse_bzimage(std::span<const std::uint8_t> file);

// The command line the kernel gets: the user's, plus what ssi's platform
// needs (docs/guests.md). ssi's hardware-reduced ACPI machine has no PIT,
// HPET or ACPI PM timer and hides kvmclock, so Linux cannot measure the TSC
// rate; ssi appends `tsc_early_khz=<tsc_khz>` (the rate KVM runs the vCPUs'
// TSC at) unless the user set one or `tsc_khz` is 0 (unknown).
std::string linux_command_line(std::string_view user, std::uint64_t tsc_khz);

struct LinuxBootConfig {
  std::string_view cmdline{};
  std::uint64_t initrd_size = 0;
  std::uint64_t acpi_rsdp = 0;  // 0: none (the kernel then scans for it)
};

// Where everything goes; a pure function of the header, the map and the sizes.
struct LinuxLayout {
  std::uint64_t kernel_addr = 0;  // protected-mode kernel
  std::uint64_t kernel_end = 0;   // kernel_addr + max(init_size, kernel size)
  std::uint64_t entry = 0;        // kernel_addr + 0x200 (64-bit entry)
  std::uint64_t boot_params = 0;
  std::uint64_t cmdline = 0;
  std::uint64_t initrd_addr = 0;  // 0 if no initrd
  std::uint64_t initrd_size = 0;
};

// Kernel at pref_address when it fits (else, if relocatable, the lowest
// aligned address from 1 MiB that does); the initrd page-aligned as high as
// initrd_addr_max and the RAM below 4 GiB allow, above the kernel.
Result<LinuxLayout> plan_linux(const BzImage& image, const MemoryMap& map,
                               const LinuxBootConfig& config);

// Writes kernel, initrd, command line and boot_params (setup header copied
// from the file and completed, e820 from e820_map()) into guest RAM.
Result<LinuxLayout> load_linux(std::span<const std::uint8_t> file, const BzImage& image,
                               std::span<const std::uint8_t> initrd, const GuestRam& ram,
                               const LinuxBootConfig& config);

// The boot protocol's selectors: __BOOT_CS = 0x10 (64-bit code), __BOOT_DS = 0x18.
inline constexpr std::uint16_t kLinuxBootCs = 0x10, kLinuxBootDs = 0x18;

// Rewrites GDT entries 2 and 3 of the boot builder's GDT as __BOOT_CS /
// __BOOT_DS (flat 64-bit code, flat data); Linux loads its own GDT early.
Result<void> write_linux_gdt(const GuestRam& ram);

// The BSP's state at the 64-bit entry: the boot builder's long-mode state with
// rip = entry, rsi = boot_params, cs = 0x10, ds = es = ss = 0x18.
EntryState linux_entry_state(const BootLayout& boot, const LinuxLayout& layout);

}  // namespace ssi::machine
