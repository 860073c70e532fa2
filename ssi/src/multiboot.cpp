#include "ssi/multiboot.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "le_bytes.hpp"
#include "ssi/e820.hpp"

namespace ssi::machine {

namespace {

using namespace multiboot;

constexpr std::uint64_t k4GiB = 4 * kGiB;
constexpr std::uint64_t kPage = 4096;
// Info page layout at kBootParamsGpa (all below 4 KiB).
constexpr std::uint64_t kInfoSize = 0x78;
constexpr std::uint64_t kModsOff = 0x80;
constexpr std::uint64_t kMmapOff = 0x100;
constexpr std::uint64_t kLoaderNameOff = 0x400;
constexpr std::uint64_t kModStringOff = 0x480;
constexpr char kLoaderName[] = "ssi";
// ELF32 (System V ABI, i386 supplement).
constexpr std::uint64_t kElf32HeaderSize = 52, kElf32PhdrSize = 32;
constexpr std::uint32_t kPtLoad = 1;

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

// Every loaded byte must be RAM above the boot area and below 4 GiB.
Result<void> check_segment(const MemoryMap& map, std::uint64_t gpa, std::uint64_t size) {
  if (gpa < kBootAreaEnd) {
    return bad(fmt::format("segment at {:#x} is below 1 MiB (ssi's boot area)", gpa));
  }
  if (gpa + size > k4GiB || !map.ram_offset(Gpa{gpa}, size).ok()) {
    return bad(
        fmt::format("segment [{:#x}, +{:#x}) is not inside guest RAM below 4 GiB", gpa, size));
  }
  return ok();
}

Result<void> parse_elf32(std::span<const std::uint8_t> f, const MemoryMap& map,
                         MultibootImage& img) {
  if (f.size() < kElf32HeaderSize || f[0] != 0x7F || f[1] != 'E' || f[2] != 'L' || f[3] != 'F') {
    return bad("multiboot kernel without the a.out kludge (flag 16) must be an ELF file");
  }
  if (f[4] == 2) {
    return bad("multiboot kernel is ELF64: multiboot v1 needs ELF32 or the a.out kludge (flag 16)");
  }
  if (f[4] != 1 || f[5] != 1 || le::get<std::uint16_t>(f, 18) != 3) {
    return bad("multiboot ELF is not a little-endian 32-bit x86 (EM_386) file");
  }
  const std::uint32_t phoff = le::get<std::uint32_t>(f, 28);
  const std::uint16_t phentsize = le::get<std::uint16_t>(f, 42);
  const std::uint16_t phnum = le::get<std::uint16_t>(f, 44);
  if (phentsize < kElf32PhdrSize ||
      std::uint64_t{phoff} + std::uint64_t{phnum} * phentsize > f.size()) {
    return bad("ELF program headers run past the end of the file");
  }
  const std::uint32_t entry = le::get<std::uint32_t>(f, 24);
  std::optional<std::uint32_t> entry_pa;
  for (std::uint32_t i = 0; i < phnum; ++i) {
    const std::uint64_t ph = phoff + std::uint64_t{i} * phentsize;
    if (le::get<std::uint32_t>(f, ph) != kPtLoad) continue;
    const std::uint32_t off = le::get<std::uint32_t>(f, ph + 4),
                        vaddr = le::get<std::uint32_t>(f, ph + 8),
                        paddr = le::get<std::uint32_t>(f, ph + 12),
                        filesz = le::get<std::uint32_t>(f, ph + 16),
                        memsz = le::get<std::uint32_t>(f, ph + 20);
    if (memsz == 0) continue;
    if (filesz > memsz) return bad(fmt::format("segment {} has p_filesz > p_memsz", i));
    if (std::uint64_t{off} + filesz > f.size()) {
      return bad(fmt::format("segment {} runs past the end of the file", i));
    }
    SSI_TRY(check_segment(map, paddr, memsz));
    img.segments.push_back({paddr, off, filesz, memsz});
    // The entry is a virtual address; QEMU translates it through the segment holding it.
    if (entry >= vaddr && entry - vaddr < memsz) entry_pa = paddr + (entry - vaddr);
  }
  if (img.segments.empty()) return bad("multiboot ELF has no PT_LOAD segment");
  if (!entry_pa) return bad(fmt::format("entry point {:#x} is not in a loaded segment", entry));
  img.entry = *entry_pa;
  return ok();
}

Result<void> parse_aout(std::span<const std::uint8_t> f, const MemoryMap& map,
                        MultibootImage& img) {
  const std::uint64_t h = img.header_offset;
  if (h + 32 > f.size()) return bad("multiboot header with the a.out kludge is truncated");
  const std::uint32_t header_addr = le::get<std::uint32_t>(f, h + 12),
                      load_addr = le::get<std::uint32_t>(f, h + 16),
                      load_end = le::get<std::uint32_t>(f, h + 20),
                      bss_end = le::get<std::uint32_t>(f, h + 24),
                      entry = le::get<std::uint32_t>(f, h + 28);
  if (header_addr < load_addr || header_addr - load_addr > h) {
    return bad(
        fmt::format("header_addr {:#x} / load_addr {:#x} do not match the header's file offset",
                    header_addr, load_addr));
  }
  const std::uint64_t file_start = h - (header_addr - load_addr);
  const std::uint64_t avail = f.size() - file_start;
  std::uint64_t file_size = load_end == 0 ? avail : std::uint64_t{load_end} - load_addr;
  if (load_end != 0 && load_end <= load_addr) return bad("load_end_addr is not above load_addr");
  if (file_size > avail) return bad("load_end_addr runs past the end of the file");
  std::uint64_t mem_size = file_size;
  if (bss_end != 0) {
    if (bss_end < load_addr + file_size) return bad("bss_end_addr is below the loaded image");
    mem_size = bss_end - load_addr;
  }
  SSI_TRY(check_segment(map, load_addr, mem_size));
  if (entry < load_addr || entry - load_addr >= mem_size) {
    return bad(fmt::format("entry_addr {:#x} is outside the loaded image", entry));
  }
  img.segments.push_back({load_addr, file_start, file_size, mem_size});
  img.entry = entry;
  return ok();
}

// Flat 32-bit code and data descriptors at the selectors the entry uses.
Result<void> write_gdt(const GuestRam& ram) {
  const std::uint64_t gdt[3] = {0, 0x00CF9B000000FFFF, 0x00CF93000000FFFF};
  return ram.write(Gpa{kGdtGpa},
                   std::span(reinterpret_cast<const std::uint8_t*>(gdt), sizeof(gdt)));
}

SegmentReg flat32(std::uint16_t selector, std::uint8_t type) {
  SegmentReg s;
  s.limit = 0xFFFFFFFF;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.s = 1;
  s.db = 1;
  s.g = 1;
  return s;
}

}  // namespace

std::optional<std::uint32_t> find_multiboot_header(std::span<const std::uint8_t> file) {
  const std::uint64_t limit = std::min<std::uint64_t>(file.size(), kSearchBytes);
  for (std::uint64_t off = 0; off + 12 <= limit; off += 4) {
    const std::uint32_t magic = le::get<std::uint32_t>(file, off);
    if (magic != kHeaderMagic) continue;
    const std::uint32_t flags = le::get<std::uint32_t>(file, off + 4);
    const std::uint32_t sum = le::get<std::uint32_t>(file, off + 8);
    if (static_cast<std::uint32_t>(magic + flags + sum) == 0)
      return static_cast<std::uint32_t>(off);
  }
  return std::nullopt;
}

Result<MultibootImage> parse_multiboot(std::span<const std::uint8_t> file, const MemoryMap& map) {
  auto off = find_multiboot_header(file);
  if (!off)
    return bad("no multiboot header (magic 0x1badb002 with a valid checksum) in the first 8 KiB");
  MultibootImage img;
  img.header_offset = *off;
  img.flags = le::get<std::uint32_t>(file, *off + 4);
  // Bits 0-15 are requirements a loader must honour or refuse; ssi does
  // 0 (modules page aligned) and 1 (memory info), and like QEMU ignores 2 (video).
  const std::uint32_t unsupported =
      img.flags & 0xFFFF & ~(kFlagPageAlign | kFlagMemInfo | kFlagVideo);
  if (unsupported != 0) {
    return bad(
        fmt::format("multiboot header requires features ssi lacks (flags {:#x})", unsupported));
  }
  img.aout_kludge = (img.flags & kFlagAout) != 0;
  SSI_TRY(img.aout_kludge ? parse_aout(file, map, img) : parse_elf32(file, map, img));
  std::sort(img.segments.begin(), img.segments.end(),
            [](const auto& a, const auto& b) { return a.gpa < b.gpa; });
  for (std::size_t i = 1; i < img.segments.size(); ++i) {
    const auto& p = img.segments[i - 1];
    if (p.gpa + p.mem_size > img.segments[i].gpa) return bad("multiboot ELF segments overlap");
  }
  img.end = img.segments.back().gpa + img.segments.back().mem_size;
  return img;
}

Result<MultibootLayout> load_multiboot(std::span<const std::uint8_t> file,
                                       const MultibootImage& img, const GuestRam& ram,
                                       const MultibootConfig& config) {
  for (const auto& s : img.segments) {
    SSI_TRY(ram.write(Gpa{s.gpa}, file.subspan(s.file_offset, s.file_size)));
    SSI_TRY(ram.fill(Gpa{s.gpa + s.file_size}, s.mem_size - s.file_size, 0));
  }
  MultibootLayout l;
  l.entry = img.entry;
  l.info = static_cast<std::uint32_t>(kBootParamsGpa);
  if (config.cmdline.size() + 1 > kCmdlineMax) {
    return bad(fmt::format("kernel command line is {} bytes; at most {}", config.cmdline.size(),
                           kCmdlineMax - 1));
  }
  if (config.module_string.size() + 1 > kBootParamsSize - kModStringOff) {
    return bad("module file name is too long for the multiboot info page");
  }
  std::vector<std::uint8_t> info(kBootParamsSize, 0);
  std::span<std::uint8_t> b(info);
  std::uint32_t flags = kInfoMem | kInfoCmdline | kInfoMmap | kInfoLoaderName;
  const auto e820 = e820_map(ram.map());
  le::put<std::uint32_t>(b, 4, static_cast<std::uint32_t>(e820[0].size / 1024));  // mem_lower
  le::put<std::uint32_t>(
      b, 8,
      static_cast<std::uint32_t>((std::min(low_ram_end(ram.map()), k4GiB) - kBootAreaEnd) / 1024));
  le::put<std::uint32_t>(b, 16, static_cast<std::uint32_t>(kCmdlineGpa));
  if (!config.module.empty()) {
    const std::uint64_t start = (img.end + kPage - 1) / kPage * kPage;
    const std::uint64_t end = start + config.module.size();
    if (end > k4GiB || !ram.map().ram_offset(Gpa{start}, config.module.size()).ok()) {
      return bad(fmt::format("module of {} KiB does not fit in RAM after the kernel at {:#x}",
                             (config.module.size() + 1023) / 1024, start));
    }
    SSI_TRY(ram.write(Gpa{start}, config.module));
    l.module_start = static_cast<std::uint32_t>(start);
    l.module_end = static_cast<std::uint32_t>(end);
    flags |= kInfoMods;
    le::put<std::uint32_t>(b, 20, 1);
    le::put<std::uint32_t>(b, 24, l.info + kModsOff);
    le::put<std::uint32_t>(b, kModsOff, l.module_start);
    le::put<std::uint32_t>(b, kModsOff + 4, l.module_end);
    le::put<std::uint32_t>(b, kModsOff + 8, static_cast<std::uint32_t>(l.info + kModStringOff));
    std::copy(config.module_string.begin(), config.module_string.end(),
              info.begin() + kModStringOff);
  }
  const std::uint64_t mmap_bytes = e820.size() * 24;
  if (kMmapOff + mmap_bytes > kLoaderNameOff) return bad("too many memory-map entries");
  for (std::size_t i = 0; i < e820.size(); ++i) {
    const std::uint64_t off = kMmapOff + 24 * i;  // size (20, excluding itself), base, length, type
    le::put<std::uint32_t>(b, off, 20);
    le::put<std::uint64_t>(b, off + 4, e820[i].addr);
    le::put<std::uint64_t>(b, off + 12, e820[i].size);
    le::put<std::uint32_t>(b, off + 20, static_cast<std::uint32_t>(e820[i].type));
  }
  le::put<std::uint32_t>(b, 44, static_cast<std::uint32_t>(mmap_bytes));
  le::put<std::uint32_t>(b, 48, static_cast<std::uint32_t>(l.info + kMmapOff));
  std::copy(std::begin(kLoaderName), std::end(kLoaderName), info.begin() + kLoaderNameOff);
  le::put<std::uint32_t>(b, 64, static_cast<std::uint32_t>(l.info + kLoaderNameOff));
  le::put<std::uint32_t>(b, 0, flags);
  static_assert(kInfoSize <= kModsOff);
  SSI_TRY(ram.write(Gpa{l.info}, info));
  std::vector<std::uint8_t> cmdline(config.cmdline.begin(), config.cmdline.end());
  cmdline.push_back(0);
  SSI_TRY(ram.write(Gpa{kCmdlineGpa}, cmdline));
  SSI_TRY(write_gdt(ram));
  return l;
}

EntryState multiboot_entry_state(const MultibootLayout& layout) {
  EntryState st;
  st.rip = layout.entry;
  st.rax = kBootMagic;
  st.rbx = layout.info;
  st.rflags = 0x2;
  st.cs = flat32(kCodeSelector, 0xB);
  st.ds = st.es = st.fs = st.gs = st.ss = flat32(kDataSelector, 0x3);
  st.tr.type = 0xB;  // busy 32-bit TSS, as after reset: VM entry requires a usable TR
  st.tr.limit = 0xFFFF;
  st.tr.present = 1;
  st.ldt.type = 0x2;
  st.ldt.unusable = true;
  st.gdt = {kGdtGpa, 3 * 8 - 1};
  st.cr0 = kCr0Pe | kCr0Et;
  return st;
}

}  // namespace ssi::machine
