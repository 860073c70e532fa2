#include "ssi/acpi.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "le_bytes.hpp"

namespace ssi::machine {

namespace {

constexpr char kOemId[] = "SSIVMM";       // 6 bytes
constexpr char kOemTable[] = "SSIMACHN";  // 8 bytes
constexpr char kCreator[] = "SSI ";       // 4 bytes
constexpr std::uint64_t kHeaderLen = 36;
constexpr std::uint64_t kChecksumOff = 9;
constexpr std::uint8_t kLocalDistance = 10;
constexpr std::uint8_t kMaxDistance = 254;  // 255 = unreachable
constexpr std::uint64_t kLocalAccessNs = 100;

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

// One table being assembled: little-endian appends, then finish() fixes up
// the length and checksum of the standard header.
class Table {
 public:
  // Standard 36-byte description header (ACPI 6.4 5.2.6).
  Table(const char (&sig)[5], std::uint8_t revision) : sig_(sig, 4) {
    raw(sig_.data(), 4);
    u32(0);  // length, fixed in finish()
    u8(revision);
    u8(0);  // checksum
    raw(kOemId, 6);
    raw(kOemTable, 8);
    u32(1);  // OEM revision
    raw(kCreator, 4);
    u32(1);  // creator revision
  }
  // A table without the standard header (the RSDP).
  explicit Table(std::string sig) : sig_(std::move(sig)) {}

  void u8(std::uint8_t v) { b_.push_back(v); }
  void u16(std::uint16_t v) { put(v); }
  void u32(std::uint32_t v) { put(v); }
  void u64(std::uint64_t v) { put(v); }
  // Byte loops: GCC 12 reports a false -Wstringop-overflow for range inserts here.
  void raw(const char* s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) b_.push_back(static_cast<std::uint8_t>(s[i]));
  }
  void zeros(std::size_t n) { b_.resize(b_.size() + n, 0); }
  // Generic Address Structure: system I/O or memory space.
  void gas(std::uint8_t space, std::uint8_t bits, std::uint8_t access, std::uint64_t addr) {
    u8(space);
    u8(bits);
    u8(0);
    u8(access);
    u64(addr);
  }
  std::size_t size() const { return b_.size(); }
  std::span<std::uint8_t> bytes() { return b_; }

  AcpiTable finish(std::uint64_t gpa) {
    le::put<std::uint32_t>(b_, 4, static_cast<std::uint32_t>(b_.size()));
    b_[kChecksumOff] = 0;
    b_[kChecksumOff] = static_cast<std::uint8_t>(-acpi_sum(b_));
    return {sig_, gpa, std::move(b_)};
  }

 private:
  template <typename T>
  void put(T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i)
      b_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  std::string sig_;
  std::vector<std::uint8_t> b_;
};

// FADT (ACPI 6.4 5.2.9), revision 6: hardware-reduced, so no PM blocks, no
// SCI, no legacy devices promised beyond what a PC has.
AcpiTable fadt(std::uint64_t gpa, std::uint64_t dsdt) {
  constexpr std::uint32_t kHwReduced = 1u << 20, kPowerButton = 1u << 4, kSleepButton = 1u << 5;
  constexpr std::uint16_t kVgaNotPresent = 1u << 2, kNoAspm = 1u << 4;
  Table t("FACP", 6);
  t.u32(0);                                 // FIRMWARE_CTRL: no FACS (hardware-reduced)
  t.u32(static_cast<std::uint32_t>(dsdt));  // 32-bit DSDT, X_DSDT below too
  t.zeros(2);                               // reserved, preferred PM profile (unspecified)
  t.u16(0);                                 // SCI_INT
  t.zeros(108 - 48);                        // SMI_CMD .. DUTY_WIDTH, DAY_ALRM, MON_ALRM: none
  t.u8(0x32);                               // CENTURY: the RTC's CMOS byte for it
  t.u16(kVgaNotPresent | kNoAspm);          // IAPC_BOOT_ARCH (offset 109)
  t.u8(0);
  t.u32(kHwReduced | kPowerButton | kSleepButton);
  t.gas(0, 0, 0, 0);       // RESET_REG: none
  t.u8(0);                 // RESET_VALUE
  t.u16(0);                // ARM_BOOT_ARCH
  t.u8(0);                 // FADT minor version
  t.u64(0);                // X_FIRMWARE_CTRL
  t.u64(dsdt);             // X_DSDT
  t.zeros(244 - 148);      // X_PM1a_EVT_BLK .. X_GPE1_BLK: none
  t.gas(0, 0, 0, 0);       // SLEEP_CONTROL_REG
  t.gas(0, 0, 0, 0);       // SLEEP_STATUS_REG
  t.raw("SSIVMM\0\0", 8);  // hypervisor vendor identity
  return t.finish(gpa);
}

// AML for the DSDT body: the ISA devices a hardware-reduced machine must
// describe for Linux to route their interrupts (no legacy ISA IRQs exist then):
//   Scope (\_SB) { Device (COM1) { Name (_HID, EisaId ("PNP0501"))
//     Name (_UID, Zero) Name (_CRS, ResourceTemplate () {
//       IO (Decode16, 0x3F8, 0x3F8, 0x00, 0x08) IRQNoFlags () {4} }) }
//   Device (RTC) { Name (_HID, EisaId ("PNP0B00")) Name (_CRS, ResourceTemplate () {
//       IO (Decode16, 0x70, 0x70, 0x01, 0x02) IRQNoFlags () {8} }) } }
// (Linux's rtc_cmos asks for IRQ 8 even though ssi's RTC never raises it.)
class Aml {
 public:
  using Bytes = std::vector<std::uint8_t>;
  // PkgLength (ACPI 6.4 20.2.4) + body; bodies here stay below 4 KiB.
  static Bytes pkg(std::uint8_t op, const Bytes& body, bool ext = false) {
    Bytes out;
    if (ext) out.push_back(0x5B);
    out.push_back(op);
    const std::size_t len = body.size() + 1;
    if (len < 0x40) {
      out.push_back(static_cast<std::uint8_t>(len));
    } else {
      const std::size_t len2 = body.size() + 2;
      out.push_back(static_cast<std::uint8_t>(0x40 | (len2 & 0xF)));
      out.push_back(static_cast<std::uint8_t>(len2 >> 4));
    }
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }
  static Bytes name(const char (&seg)[5], const Bytes& value) {
    Bytes out{0x08, static_cast<std::uint8_t>(seg[0]), static_cast<std::uint8_t>(seg[1]),
              static_cast<std::uint8_t>(seg[2]), static_cast<std::uint8_t>(seg[3])};
    out.insert(out.end(), value.begin(), value.end());
    return out;
  }
  static Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  }
};

std::vector<std::uint8_t> isa_devices_aml() {
  constexpr std::uint8_t kDword = 0x0C, kZero = 0x00, kBuffer = 0x11, kByte = 0x0A;
  constexpr std::uint8_t kScope = 0x10, kDevice = 0x82;
  auto crs = [&](const Aml::Bytes& resources) {
    Aml::Bytes all = Aml::cat({resources, {0x79, 0x00}});  // + end tag
    return Aml::name("_CRS", Aml::pkg(kBuffer, Aml::cat({{kByte, static_cast<std::uint8_t>(all.size())}, all})));
  };
  const Aml::Bytes com1 =
      Aml::pkg(kDevice,
               Aml::cat({{'C', 'O', 'M', '1'},
                         Aml::name("_HID", {kDword, 0x41, 0xD0, 0x05, 0x01}),  // EisaId("PNP0501")
                         Aml::name("_UID", {kZero}),
                         crs({0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x00, 0x08,  // IO 0x3f8, 8 ports
                              0x22, 0x10, 0x00})}),                          // IRQNoFlags: IRQ 4
               true);
  const Aml::Bytes rtc =
      Aml::pkg(kDevice,
               Aml::cat({{'R', 'T', 'C', '_'},
                         Aml::name("_HID", {kDword, 0x41, 0xD0, 0x0B, 0x00}),  // EisaId("PNP0B00")
                         crs({0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02,  // IO 0x70, 2 ports
                              0x22, 0x00, 0x01})}),                          // IRQNoFlags: IRQ 8
               true);
  return Aml::pkg(kScope, Aml::cat({{'\\', '_', 'S', 'B', '_'}, com1, rtc}));
}

AcpiTable dsdt_table() {
  Table t("DSDT", 2);
  for (std::uint8_t b : isa_devices_aml()) t.u8(b);
  return t.finish(0);
}

AcpiTable madt(std::uint64_t gpa, std::uint32_t cpus) {
  Table t("APIC", 5);
  t.u32(static_cast<std::uint32_t>(kLapicBase));
  t.u32(0);                                   // flags: no PC-AT 8259 pair promised
  for (std::uint32_t i = 0; i < cpus; ++i) {  // Processor Local APIC
    t.u8(0);
    t.u8(8);
    t.u8(static_cast<std::uint8_t>(i));  // ACPI processor UID
    t.u8(static_cast<std::uint8_t>(i));  // APIC id == vCPU index
    t.u32(1);                            // enabled
  }
  t.u8(1);  // I/O APIC
  t.u8(12);
  t.u8(static_cast<std::uint8_t>(cpus));  // IOAPIC id after the LAPIC ids
  t.u8(0);
  t.u32(static_cast<std::uint32_t>(kIoApicBase));
  t.u32(0);  // GSI base
  t.u8(2);   // Interrupt source override: ISA IRQ0 (timer) -> GSI 2, as on PCs
  t.u8(10);
  t.u8(0);
  t.u8(0);
  t.u32(2);
  t.u16(0);
  t.u8(4);  // Local APIC NMI: all processors, LINT1
  t.u8(6);
  t.u8(0xFF);
  t.u16(0);
  t.u8(1);
  return t.finish(gpa);
}

AcpiTable srat(std::uint64_t gpa, const AcpiConfig& c) {
  Table t("SRAT", 3);
  t.u32(1);  // reserved, 1 for compatibility
  t.u64(0);
  for (std::uint32_t i = 0; i < c.cpus; ++i) {  // Processor Local APIC affinity
    std::uint32_t node = c.cpu_node.empty() ? 0 : c.cpu_node[i];
    t.u8(0);
    t.u8(16);
    t.u8(static_cast<std::uint8_t>(node));
    t.u8(static_cast<std::uint8_t>(i));
    t.u32(1);  // enabled
    t.u8(0);   // local SAPIC EID
    t.u8(static_cast<std::uint8_t>(node >> 8));
    t.u8(static_cast<std::uint8_t>(node >> 16));
    t.u8(static_cast<std::uint8_t>(node >> 24));
    t.u32(0);  // clock domain
  }
  for (std::uint32_t node = 0; node < c.node_memory.size(); ++node) {
    for (const MemRange& r : c.node_memory[node]) {  // Memory affinity
      t.u8(1);
      t.u8(40);
      t.u32(node);
      t.u16(0);
      t.u64(r.base);
      t.u64(r.size);
      t.u32(0);
      t.u32(1);  // enabled
      t.u64(0);
    }
  }
  return t.finish(gpa);
}

AcpiTable slit(std::uint64_t gpa, std::uint32_t nodes, std::uint8_t remote) {
  Table t("SLIT", 1);
  t.u64(nodes);
  for (std::uint32_t i = 0; i < nodes; ++i) {
    for (std::uint32_t j = 0; j < nodes; ++j) t.u8(i == j ? kLocalDistance : remote);
  }
  return t.finish(gpa);
}

AcpiTable rsdp(std::uint64_t gpa, std::uint64_t xsdt) {
  Table t(std::string("RSD PTR "));
  t.raw("RSD PTR ", 8);
  t.u8(0);  // checksum of the first 20 bytes
  t.raw(kOemId, 6);
  t.u8(2);   // revision: ACPI 2.0+
  t.u32(0);  // no RSDT
  t.u32(36);
  t.u64(xsdt);
  t.u8(0);  // extended checksum (all 36 bytes)
  t.zeros(3);
  auto b = t.bytes();
  b[8] = static_cast<std::uint8_t>(-acpi_sum(b.subspan(0, 20)));
  b[32] = static_cast<std::uint8_t>(-acpi_sum(b));
  return {"RSD PTR ", gpa, std::vector<std::uint8_t>(b.begin(), b.end())};
}

Result<void> check(const AcpiConfig& c) {
  if (c.cpus == 0 || c.cpus > 255) return bad(fmt::format("{} vCPUs: ACPI needs 1..255", c.cpus));
  if (!c.cpu_node.empty() && c.cpu_node.size() != c.cpus) {
    return bad(
        fmt::format("cpu-to-node map has {} entries for {} cpus", c.cpu_node.size(), c.cpus));
  }
  if (c.node_memory.empty()) return bad("no NUMA node has memory");
  for (std::uint32_t n : c.cpu_node) {
    if (n >= c.node_memory.size()) {
      return bad(fmt::format("a cpu is on node {}, but only {} nodes have memory", n,
                             c.node_memory.size()));
    }
  }
  if (c.node_memory.size() > 1 && c.remote_distance <= kLocalDistance) {
    return bad(
        fmt::format("remote NUMA distance {} must be above the local 10", c.remote_distance));
  }
  return ok();
}

}  // namespace

std::uint8_t acpi_sum(std::span<const std::uint8_t> bytes) {
  return static_cast<std::uint8_t>(std::accumulate(bytes.begin(), bytes.end(), 0u));
}

Result<AcpiTables> build_acpi(const AcpiConfig& c, std::uint64_t base, std::uint64_t limit) {
  SSI_TRY(check(c));
  // Fixed order; each table 16-byte aligned. Sizes are known before
  // addresses are needed except for the XSDT/FADT/RSDP pointers, so lay out
  // the leaf tables first and the pointer tables after them.
  AcpiTables out;
  std::uint64_t next = base;
  auto place = [&next](std::uint64_t size) {
    std::uint64_t at = next;
    next = (next + size + 15) / 16 * 16;
    return at;
  };
  const std::uint64_t rsdp_at = place(36);
  const std::uint32_t nodes = static_cast<std::uint32_t>(c.node_memory.size());
  AcpiTable dsdt = dsdt_table();
  dsdt.gpa = place(dsdt.bytes.size());
  AcpiTable apic = madt(0, c.cpus);
  apic.gpa = place(apic.bytes.size());
  AcpiTable sra = srat(0, c);
  sra.gpa = place(sra.bytes.size());
  AcpiTable sli = slit(0, nodes, c.remote_distance);
  sli.gpa = place(sli.bytes.size());
  const std::uint64_t fadt_at = place(276);
  AcpiTable facp = fadt(fadt_at, dsdt.gpa);
  Table x("XSDT", 1);
  for (std::uint64_t p : {facp.gpa, apic.gpa, sra.gpa, sli.gpa}) x.u64(p);
  const std::uint64_t xsdt_at = place(x.size());
  if (next - base > limit) {
    return bad(
        fmt::format("ACPI tables need {} bytes, more than the {} reserved", next - base, limit));
  }
  out.rsdp_gpa = rsdp_at;
  out.tables.push_back(rsdp(rsdp_at, xsdt_at));
  out.tables.push_back(x.finish(xsdt_at));
  out.tables.push_back(std::move(facp));
  out.tables.push_back(std::move(dsdt));
  out.tables.push_back(std::move(apic));
  out.tables.push_back(std::move(sra));
  out.tables.push_back(std::move(sli));
  return out;
}

Result<void> write_acpi(const AcpiTables& tables, const GuestRam& ram) {
  for (const AcpiTable& t : tables.tables) SSI_TRY(ram.write(Gpa{t.gpa}, t.bytes));
  // BIOS data area: the EBDA segment points at the tables, so guests that
  // scan the first KiB of the EBDA for the RSDP (Linux without
  // acpi_rsdp_addr, many test kernels) find it, and reserve the area.
  if (tables.rsdp_gpa < kLowRamEnd && tables.rsdp_gpa % 16 == 0) {
    SSI_TRY(
        ram.write_value(Gpa{kBdaEbdaSegment}, static_cast<std::uint16_t>(tables.rsdp_gpa >> 4)));
  }
  return ok();
}

std::vector<std::vector<MemRange>> node_memory(const MemoryMap& map, std::uint32_t nodes) {
  std::vector<std::vector<MemRange>> out(nodes);
  if (nodes == 0) return out;
  const std::uint64_t pages = map.ram_bytes() / 4096;
  const std::uint64_t per = pages / nodes, extra = pages % nodes;
  std::uint32_t node = 0;
  std::uint64_t left = (per + (extra > 0 ? 1 : 0)) * 4096;  // bytes node `node` still takes
  for (const Region& r : map.regions()) {
    if (r.kind != RegionKind::kRam && r.kind != RegionKind::kBootArea) continue;
    std::uint64_t at = r.base.value(), rest = r.size;
    while (rest > 0 && node < nodes) {
      std::uint64_t take = std::min(rest, left);
      if (take > 0) {
        auto& ranges = out[node];
        if (!ranges.empty() && ranges.back().base + ranges.back().size == at) {
          ranges.back().size += take;  // boot area and RAM above it are one range
        } else {
          ranges.push_back({at, take});
        }
      }
      at += take;
      rest -= take;
      left -= take;
      if (left == 0 && ++node < nodes) left = (per + (node < extra ? 1 : 0)) * 4096;
    }
  }
  return out;
}

std::uint8_t slit_distance(std::uint64_t remote_latency_ns) {
  const std::uint64_t scaled =
      kLocalDistance * (kLocalAccessNs + remote_latency_ns) / kLocalAccessNs;
  return static_cast<std::uint8_t>(
      std::clamp<std::uint64_t>(scaled, kLocalDistance + 1, kMaxDistance));
}

}  // namespace ssi::machine
