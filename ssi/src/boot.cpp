#include "ssi/boot.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace ssi::machine {

namespace {

constexpr std::uint64_t kSmallPage = 4096;
constexpr std::uint64_t kHugePage = 2 * kMiB;
constexpr std::uint64_t kEntries = 512;
constexpr std::uint64_t kTssLimit = 0x67;
constexpr std::uint16_t kTssIoMapOffset = 0x66;  // where the I/O bitmap base lives in a TSS

std::span<const std::uint8_t> bytes_of(const std::vector<std::uint64_t>& v) {
  return {reinterpret_cast<const std::uint8_t*>(v.data()), v.size() * sizeof(std::uint64_t)};
}

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

// GDT descriptors (Intel SDM vol. 3 3.4.5): flat 4 GiB, 4 KiB granularity.
constexpr std::uint64_t kKernelCode64 = 0x00AF9B000000FFFF;  // L=1, DPL0, exec/read, accessed
constexpr std::uint64_t kKernelData = 0x00CF93000000FFFF;    // DPL0, read/write, accessed
constexpr std::uint64_t kUserData = 0x00CFF3000000FFFF;      // DPL3
constexpr std::uint64_t kUserCode64 = 0x00AFFB000000FFFF;    // L=1, DPL3
constexpr unsigned kTssBusyType = 0xB;

std::uint16_t tss_selector(std::uint32_t cpu) { return SSI_SEL_TSS0 + 16 * cpu; }
std::uint64_t tss_gpa(std::uint32_t cpu) { return kTssGpa + std::uint64_t{cpu} * kTssStride; }

// Writes one 4-level identity map of [0, map_end) with 2 MiB pages at
// `root`; `extra` is OR-ed into every entry (the U bit for the user variant).
// Accessed and Dirty are set up front: otherwise the CPU's page walker
// writes them into the tables on first use, and across nodes every such
// write is a DSM write fault on a page-table page that all vCPUs share
// (page walks during event delivery then need the page back).
Result<void> write_page_tables(const GuestRam& ram, std::uint64_t root, std::uint64_t map_end,
                               std::uint64_t extra) {
  const std::uint64_t pdpt = root + kSmallPage;
  const std::uint64_t pd0 = pdpt + kSmallPage;
  const std::uint64_t gigs = map_end / kGiB;
  std::vector<std::uint64_t> table(kEntries, 0);
  const std::uint64_t flags = kPtePresent | kPteWrite | kPteAccessed | extra;
  table[0] = pdpt | flags;
  SSI_TRY(ram.write(Gpa{root}, bytes_of(table)));
  std::fill(table.begin(), table.end(), 0);
  for (std::uint64_t g = 0; g < gigs; ++g) {
    table[g] = (pd0 + g * kSmallPage) | flags;
  }
  SSI_TRY(ram.write(Gpa{pdpt}, bytes_of(table)));
  for (std::uint64_t g = 0; g < gigs; ++g) {
    for (std::uint64_t j = 0; j < kEntries; ++j) {
      std::uint64_t addr = g * kGiB + j * kHugePage;
      // MMIO below 4 GiB must not be cached.
      std::uint64_t cache = (addr >= kPciHoleStart && addr < kHighRamStart) ? kPtePcd | kPtePwt : 0;
      table[j] = addr | flags | kPteDirty | kPteHuge | cache;
    }
    SSI_TRY(ram.write(Gpa{pd0 + g * kSmallPage}, bytes_of(table)));
  }
  return ok();
}

Result<void> write_gdt_and_tss(const GuestRam& ram, std::uint32_t cpus) {
  std::vector<std::uint64_t> gdt(8 + 2 * std::size_t{cpus}, 0);
  gdt[SSI_SEL_KERNEL_CODE >> 3] = kKernelCode64;
  gdt[SSI_SEL_KERNEL_DATA >> 3] = kKernelData;
  gdt[SSI_SEL_USER_DATA >> 3] = kUserData;
  gdt[SSI_SEL_USER_CODE >> 3] = kUserCode64;
  for (std::uint32_t cpu = 0; cpu < cpus; ++cpu) {
    std::uint64_t base = tss_gpa(cpu);
    std::uint64_t lo = (kTssLimit & 0xFFFF) | ((base & 0xFFFFFF) << 16) |
                       (std::uint64_t{kTssBusyType} << 40) | (1ull << 47) |
                       (((kTssLimit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    gdt[tss_selector(cpu) >> 3] = lo;
    gdt[(tss_selector(cpu) >> 3) + 1] = base >> 32;
    SSI_TRY(ram.fill(Gpa{base}, kTssStride, 0));
    // An I/O bitmap offset past the limit means "no bitmap": ring 3 has no port access.
    SSI_TRY(ram.write_value(Gpa{base + kTssIoMapOffset}, std::uint16_t{kTssLimit + 1}));
  }
  return ram.write(Gpa{kGdtGpa}, bytes_of(gdt));
}

SegmentReg flat(std::uint16_t selector, std::uint8_t type, bool code) {
  SegmentReg s;
  s.base = 0;
  s.limit = 0xFFFFFFFF;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.s = 1;
  s.g = 1;
  s.l = code ? 1 : 0;
  s.db = code ? 0 : 1;  // a 64-bit code segment must have D=0
  return s;
}

EntryState long_mode_state(const BootLayout& l, std::uint32_t cpu) {
  EntryState st;
  st.rflags = 0x2;  // reserved bit 1; interrupts off
  st.rdi = kBootInfoGpa;
  st.rsi = cpu;
  st.cs = flat(SSI_SEL_KERNEL_CODE, 0xB, true);
  st.ds = st.es = st.fs = st.gs = st.ss = flat(SSI_SEL_KERNEL_DATA, 0x3, false);
  st.tr.base = tss_gpa(cpu);
  st.tr.limit = kTssLimit;
  st.tr.selector = tss_selector(cpu);
  st.tr.type = kTssBusyType;
  st.tr.present = 1;
  st.ldt.type = 0x2;
  st.ldt.unusable = true;
  st.gdt = {kGdtGpa, static_cast<std::uint16_t>(8 * (8 + 2 * l.cpu_count) - 1)};
  st.idt = {0, 0};
  st.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
  st.cr3 = l.kernel_cr3_of(cpu);
  st.cr4 = kCr4Pae;
  st.efer = kEferLme | kEferLma;
  return st;
}

}  // namespace

std::uint64_t BootLayout::kernel_cr3_of(std::uint32_t cpu) const {
  if (cpu >= cpu_node.size() || cpu_node[cpu] >= node_kernel_cr3.size()) return kernel_cr3;
  return node_kernel_cr3[cpu_node[cpu]];
}

EntryState BootLayout::bsp_state() const {
  EntryState st = long_mode_state(*this, 0);
  st.rip = kernel_entry;
  st.rsp = kBootStackTop;
  return st;
}

Result<EntryState> BootLayout::ap_state(std::uint32_t cpu, std::uint8_t sipi_vector) const {
  if (cpu == 0 || cpu >= cpu_count) {
    return bad(fmt::format("cpu {} is not an application processor (cpus: {})", cpu, cpu_count));
  }
  if (sipi_vector == 0) return bad("SIPI vector 0 would start the AP at address 0");
  EntryState st = long_mode_state(*this, cpu);
  st.rip = std::uint64_t{sipi_vector} << 12;
  st.rsp = 0;
  return st;
}

static Result<void> fill_node_ram(ssi_boot_info& info, const BootConfig& config, std::uint64_t ram_bytes) {
  const auto& starts = config.node_ram_start;
  if (starts.empty()) return ok();  // all RAM on node 0: zeros
  if (starts.size() != config.node_count || config.node_count > SSI_MAX_NODES || starts[0] != 0)
    return bad(fmt::format("node RAM map has {} entries for {} nodes (at most {}, from 0)",
                           starts.size(), config.node_count, SSI_MAX_NODES));
  for (std::size_t n = 0; n < starts.size(); ++n) {
    if ((n > 0 && starts[n] < starts[n - 1]) || starts[n] > ram_bytes)
      return bad(fmt::format("node {} RAM starts at {:#x}: out of order or past the RAM", n,
                             starts[n]));
    info.node_ram_start[n] = starts[n];
  }
  return ok();
}

Result<BootLayout> build_boot_area(const GuestRam& ram, const BootConfig& config) {
  if (config.cpu_count == 0 || config.cpu_count > kMaxVcpus) {
    return bad(fmt::format("cpu count {} is outside 1..{}", config.cpu_count, kMaxVcpus));
  }
  if (config.node_count == 0) return bad("node count must be at least 1");
  if (!config.cpu_node.empty() && config.cpu_node.size() != config.cpu_count) {
    return bad(fmt::format("cpu-to-node map has {} entries for {} cpus", config.cpu_node.size(),
                           config.cpu_count));
  }
  BootLayout l;
  l.cpu_count = config.cpu_count;
  l.kernel_entry = config.kernel_entry;
  l.map_end = (std::max(kHighRamStart, ram.map().ram_end()) + kGiB - 1) / kGiB * kGiB;
  const std::uint64_t variant_bytes = (2 + l.map_end / kGiB) * kSmallPage;
  if (kPageTablesGpa + 2 * variant_bytes > kPageTablesEnd) {
    return bad(fmt::format("page tables for {} GiB do not fit the boot area", l.map_end / kGiB));
  }
  l.kernel_cr3 = kPageTablesGpa;
  l.user_cr3 = kPageTablesGpa + variant_bytes;
  // One copy of both roots per node when they fit the boot area (boot_info.h,
  // v3), else the one shared copy.
  const std::uint32_t copies =
      config.node_count > 1 && config.node_count <= SSI_MAX_NODES &&
              kPageTablesGpa + config.node_count * 2 * variant_bytes <= kPageTablesEnd
          ? config.node_count
          : 1;
  for (std::uint32_t n = 0; n < copies; ++n) {
    const std::uint64_t root = kPageTablesGpa + n * 2 * variant_bytes;
    SSI_TRY(write_page_tables(ram, root, l.map_end, 0));
    SSI_TRY(write_page_tables(ram, root + variant_bytes, l.map_end, kPteUser));
    if (copies > 1) l.node_kernel_cr3.push_back(root);
  }
  SSI_TRY(write_gdt_and_tss(ram, config.cpu_count));

  ssi_boot_info info{};
  info.magic = SSI_BOOT_MAGIC;
  info.version = SSI_BOOT_VERSION;
  info.cpu_count = config.cpu_count;
  info.mem_bytes = ram.map().ram_bytes();
  info.ram_end = ram.map().ram_end();
  info.map_end = l.map_end;
  info.kernel_cr3 = l.kernel_cr3;
  info.user_cr3 = l.user_cr3;
  info.gdt_base = kGdtGpa;
  info.tss_base = kTssGpa;
  info.tss_stride = kTssStride;
  info.node_count = config.node_count;
  info.trampoline_gpa = kTrampolineGpa;
  info.lapic_base = kLapicBase;
  info.ioapic_base = kIoApicBase;
  info.kernel_end = config.kernel_end;
  for (std::uint32_t cpu = 0; cpu < config.cpu_count; ++cpu) {
    std::uint32_t node = config.cpu_node.empty() ? 0 : config.cpu_node[cpu];
    if (node >= config.node_count) {
      return bad(fmt::format("cpu {} is on node {}, but there are {} nodes", cpu, node,
                             config.node_count));
    }
    info.cpu_node[cpu] = node;
    l.cpu_node.push_back(node);
  }
  for (std::size_t n = 0; n < l.node_kernel_cr3.size(); ++n) {
    info.node_kernel_cr3[n] = l.node_kernel_cr3[n];
    info.node_user_cr3[n] = l.node_kernel_cr3[n] + (l.user_cr3 - l.kernel_cr3);  // the pair's layout
  }
  SSI_TRY(fill_node_ram(info, config, ram.map().ram_bytes()));
  SSI_TRY(ram.write_value(Gpa{kBootInfoGpa}, info));
  return l;
}

Result<BootLayout> read_boot_layout(const GuestRam& ram) {
  SSI_ASSIGN_OR_RETURN(auto info, ram.read_value<ssi_boot_info>(Gpa{kBootInfoGpa}));
  if (info.magic != SSI_BOOT_MAGIC || info.version != SSI_BOOT_VERSION)
    return make_error(Errc::kProtocol,
                      fmt::format("no ssi boot info at {:#x} (magic {:#x}, version {})",
                                  kBootInfoGpa, info.magic, info.version));
  BootLayout l;
  l.kernel_cr3 = info.kernel_cr3;
  l.user_cr3 = info.user_cr3;
  l.map_end = info.map_end;
  l.cpu_count = info.cpu_count;
  for (std::uint32_t cpu = 0; cpu < info.cpu_count && cpu < SSI_MAX_VCPUS; ++cpu)
    l.cpu_node.push_back(info.cpu_node[cpu]);
  for (std::uint32_t n = 0; n < info.node_count && n < SSI_MAX_NODES && info.node_kernel_cr3[n]; ++n)
    l.node_kernel_cr3.push_back(info.node_kernel_cr3[n]);
  return l;
}

}  // namespace ssi::machine
