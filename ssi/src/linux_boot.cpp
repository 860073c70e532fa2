#include "ssi/linux_boot.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "le_bytes.hpp"
#include "ssi/e820.hpp"

namespace ssi::machine {

namespace {

using namespace bzimage;

constexpr std::uint64_t kSector = 512;
constexpr std::uint64_t kDefaultSetupSects = 4;     // a 0 in the header means 4 (protocol)
constexpr std::uint64_t kBootParamsHdrMax = 0x290;  // boot_params pads the header to here
constexpr std::uint64_t kPage = 4096;
constexpr std::uint8_t kLoaderUndefined = 0xFF;

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

bool fits_ram(const MemoryMap& map, std::uint64_t addr, std::uint64_t len) {
  return map.ram_offset(Gpa{addr}, len).ok();
}

}  // namespace

namespace {

constexpr std::string_view kTscEarlyKhz = "tsc_early_khz=";

bool names_tsc_rate(std::string_view user) {
  // A parameter at the start or after a space (Linux splits on spaces).
  for (std::size_t at = user.find(kTscEarlyKhz); at != std::string_view::npos;
       at = user.find(kTscEarlyKhz, at + 1)) {
    if (at == 0 || user[at - 1] == ' ') return true;
  }
  return false;
}

}  // namespace

std::string linux_command_line(std::string_view user, std::uint64_t tsc_khz) {
  std::string out(user);
  if (tsc_khz == 0 || names_tsc_rate(user)) return out;
  if (!out.empty()) out += ' ';
  return out + std::string(kTscEarlyKhz) + std::to_string(tsc_khz);
}

bool looks_like_bzimage(std::span<const std::uint8_t> file) {
  return file.size() >= kHeaderMagicOff + 4 && le::get<std::uint16_t>(file, kBootFlag) == 0xAA55 &&
         le::get<std::uint32_t>(file, kHeaderMagicOff) == kHeaderMagic;
}

Result<BzImage> parse_bzimage(std::span<const std::uint8_t> file) {
  if (file.size() < kHeaderMinEnd) {
    return bad(fmt::format("too small for a bzImage ({} bytes)", file.size()));
  }
  if (le::get<std::uint16_t>(file, kBootFlag) != 0xAA55) {
    return bad("not a bzImage: no 0xaa55 boot signature at offset 0x1fe");
  }
  if (le::get<std::uint32_t>(file, kHeaderMagicOff) != kHeaderMagic) {
    return bad("not a bzImage: no 'HdrS' setup header at offset 0x202");
  }
  BzImage img;
  img.version = le::get<std::uint16_t>(file, kVersion);
  if (img.version < kMinVersion) {
    return bad(fmt::format("boot protocol {}.{:02} is too old (ssi needs 2.12 or later)",
                           img.version >> 8, img.version & 0xFF));
  }
  img.header_end = std::min<std::uint64_t>(0x202 + file[0x201], kBootParamsHdrMax);
  if (img.header_end < kHeaderMinEnd) {
    return bad(
        fmt::format("setup header ends at {:#x}, before the protocol 2.12 fields", img.header_end));
  }
  std::uint64_t sects = file[kSetupSects] == 0 ? kDefaultSetupSects : file[kSetupSects];
  img.setup_bytes = (sects + 1) * kSector;
  if (img.setup_bytes >= file.size()) {
    return bad(fmt::format("setup code ({} sectors) leaves no kernel in a {}-byte file", sects,
                           file.size()));
  }
  img.kernel_bytes = file.size() - img.setup_bytes;
  img.loadflags = file[kLoadflags];
  if (!(img.loadflags & kLoadedHigh)) {
    return bad("kernel does not load high (LOADED_HIGH clear): zImage is not supported");
  }
  img.xloadflags = le::get<std::uint16_t>(file, kXloadflags);
  if (!(img.xloadflags & kXlfKernel64)) {
    return bad("kernel has no 64-bit entry point (XLF_KERNEL_64 clear in xloadflags)");
  }
  img.relocatable = file[kRelocatable] != 0;
  img.kernel_alignment = le::get<std::uint32_t>(file, kKernelAlignment);
  if (img.relocatable &&
      (img.kernel_alignment == 0 || (img.kernel_alignment & (img.kernel_alignment - 1)) != 0)) {
    return bad(fmt::format("kernel_alignment {:#x} is not a power of two", img.kernel_alignment));
  }
  img.pref_address = le::get<std::uint64_t>(file, kPrefAddress);
  img.init_size = le::get<std::uint32_t>(file, kInitSize);
  if (img.init_size == 0) return bad("init_size is 0 (corrupt setup header)");
  img.initrd_addr_max = le::get<std::uint32_t>(file, kInitrdAddrMax);
  img.cmdline_size = le::get<std::uint32_t>(file, kCmdlineSize);
  return img;
}

Result<LinuxLayout> plan_linux(const BzImage& img, const MemoryMap& map,
                               const LinuxBootConfig& config) {
  LinuxLayout l;
  const std::uint64_t need = std::max<std::uint64_t>(img.init_size, img.kernel_bytes);
  if (img.pref_address >= kBootAreaEnd && fits_ram(map, img.pref_address, need)) {
    l.kernel_addr = img.pref_address;
  } else if (img.relocatable && fits_ram(map, align_up(kBootAreaEnd, img.kernel_alignment), need)) {
    l.kernel_addr = align_up(kBootAreaEnd, img.kernel_alignment);
  } else {
    return bad(fmt::format("kernel needs {} MiB of RAM from {:#x} (init_size); use a larger --mem",
                           (need + kMiB - 1) / kMiB, img.pref_address));
  }
  l.kernel_end = l.kernel_addr + need;
  l.entry = l.kernel_addr + kEntry64Offset;
  l.boot_params = kBootParamsGpa;
  l.cmdline = kCmdlineGpa;
  if (config.cmdline.find('\0') != std::string_view::npos) {
    return bad("kernel command line contains a NUL byte");
  }
  const std::uint64_t max_cmdline = std::min<std::uint64_t>(img.cmdline_size, kCmdlineMax - 1);
  if (config.cmdline.size() > max_cmdline) {
    return bad(fmt::format("kernel command line is {} bytes; this kernel accepts at most {}",
                           config.cmdline.size(), max_cmdline));
  }
  if (config.initrd_size > 0) {
    const std::uint64_t top =
        std::min<std::uint64_t>(std::uint64_t{img.initrd_addr_max} + 1, low_ram_end(map));
    const std::uint64_t addr =
        top >= config.initrd_size ? (top - config.initrd_size) / kPage * kPage : 0;
    if (addr < l.kernel_end) {
      return bad(
          fmt::format("initrd of {} KiB does not fit between the kernel end {:#x} and {:#x}; use a "
                      "larger --mem",
                      (config.initrd_size + 1023) / 1024, l.kernel_end, top));
    }
    l.initrd_addr = addr;
    l.initrd_size = config.initrd_size;
  }
  return l;
}

Result<LinuxLayout> load_linux(std::span<const std::uint8_t> file, const BzImage& img,
                               std::span<const std::uint8_t> initrd, const GuestRam& ram,
                               const LinuxBootConfig& config) {
  LinuxBootConfig cfg = config;
  cfg.initrd_size = initrd.size();
  SSI_ASSIGN_OR_RETURN(LinuxLayout l, plan_linux(img, ram.map(), cfg));
  SSI_TRY(ram.write(Gpa{l.kernel_addr}, file.subspan(img.setup_bytes)));
  if (!initrd.empty()) SSI_TRY(ram.write(Gpa{l.initrd_addr}, initrd));
  std::vector<std::uint8_t> cmdline(cfg.cmdline.begin(), cfg.cmdline.end());
  cmdline.push_back(0);
  SSI_TRY(ram.write(Gpa{l.cmdline}, cmdline));

  std::vector<std::uint8_t> zp(kBootParamsSize, 0);
  std::span<std::uint8_t> z(zp);
  std::copy(file.begin() + kSetupSects, file.begin() + static_cast<std::ptrdiff_t>(img.header_end),
            zp.begin() + kSetupSects);
  z[kTypeOfLoader] = kLoaderUndefined;
  le::put<std::uint32_t>(z, kCmdLinePtr, static_cast<std::uint32_t>(l.cmdline));
  le::put<std::uint32_t>(z, kExtCmdLinePtr, static_cast<std::uint32_t>(l.cmdline >> 32));
  le::put<std::uint32_t>(z, kRamdiskImage, static_cast<std::uint32_t>(l.initrd_addr));
  le::put<std::uint32_t>(z, kExtRamdiskImage, static_cast<std::uint32_t>(l.initrd_addr >> 32));
  le::put<std::uint32_t>(z, kRamdiskSize, static_cast<std::uint32_t>(l.initrd_size));
  le::put<std::uint32_t>(z, kExtRamdiskSize, static_cast<std::uint32_t>(l.initrd_size >> 32));
  le::put<std::uint64_t>(z, kAcpiRsdpAddr, cfg.acpi_rsdp);
  const auto e820 = e820_map(ram.map());
  if (e820.size() > kE820Max) return bad("too many e820 entries");
  z[kE820Entries] = static_cast<std::uint8_t>(e820.size());
  for (std::size_t i = 0; i < e820.size(); ++i) {
    const std::uint64_t off = kE820Table + 20 * i;  // packed: addr u64, size u64, type u32
    le::put<std::uint64_t>(z, off, e820[i].addr);
    le::put<std::uint64_t>(z, off + 8, e820[i].size);
    le::put<std::uint32_t>(z, off + 16, static_cast<std::uint32_t>(e820[i].type));
  }
  SSI_TRY(ram.write(Gpa{l.boot_params}, zp));
  return l;
}

Result<void> write_linux_gdt(const GuestRam& ram) {
  constexpr std::uint64_t kCode64 = 0x00AF9B000000FFFF, kData = 0x00CF93000000FFFF;
  SSI_TRY(ram.write_value(Gpa{kGdtGpa + kLinuxBootCs}, kCode64));
  return ram.write_value(Gpa{kGdtGpa + kLinuxBootDs}, kData);
}

EntryState linux_entry_state(const BootLayout& boot, const LinuxLayout& layout) {
  EntryState st = boot.bsp_state();
  st.rip = layout.entry;
  st.rsi = layout.boot_params;
  st.rdi = 0;
  st.cs.selector = kLinuxBootCs;
  for (SegmentReg* s : {&st.ds, &st.es, &st.ss}) s->selector = kLinuxBootDs;
  return st;
}

}  // namespace ssi::machine
