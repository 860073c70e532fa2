// ACPI tables ssi builds for foreign guests: RSDP (2.0), XSDT, FADT
// (hardware-reduced, ACPI 6), a DSDT with COM1 (so its IRQ 4 is routed), MADT
// (one local APIC per vCPU, the IOAPIC, ISA IRQ0 -> GSI2 override, LINT1 NMI), SRAT (each ssi node
// is a NUMA node: its vCPUs and its home memory) and SLIT (distances). Plain bytes with correct
// checksums, placed at a fixed guest address (e820.hpp); tests dump and disassemble them with iasl.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "ssi/e820.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

struct MemRange {
  std::uint64_t base = 0;
  std::uint64_t size = 0;
};

struct AcpiConfig {
  std::uint32_t cpus = 1;
  std::vector<std::uint32_t> cpu_node{};             // node of each vCPU; empty = all node 0
  std::vector<std::vector<MemRange>> node_memory{};  // per node: its home RAM
  std::uint8_t remote_distance = 20;                 // SLIT entry between two nodes (> 10)
};

struct AcpiTable {
  std::string signature{};  // "RSD PTR " for the RSDP, else the 4-letter signature
  std::uint64_t gpa = 0;
  std::vector<std::uint8_t> bytes{};
};

struct AcpiTables {
  std::uint64_t rsdp_gpa = 0;
  std::vector<AcpiTable> tables{};  // RSDP first, then XSDT, FADT, DSDT, APIC, SRAT, SLIT
};

// Builds every table at [base, base + limit); fails on bad config or if the
// tables do not fit.
Result<AcpiTables> build_acpi(const AcpiConfig& config, std::uint64_t base = kAcpiGpa,
                              std::uint64_t limit = kAcpiSize);

Result<void> write_acpi(const AcpiTables& tables, const GuestRam& ram);

// The home memory of each of `nodes` nodes as guest-physical ranges: guest RAM
// (in memory-map order, boot area included) cut into equal contiguous chunks
// of pages, the first nodes taking one extra page of any remainder -- the
// same split as dsm::HomeMap::equal_chunks. A chunk crossing the PCI hole
// becomes two ranges.
std::vector<std::vector<MemRange>> node_memory(const MemoryMap& map, std::uint32_t nodes);

// SLIT distance for a remote node from the transport's one-way latency: the
// ratio to a local DRAM access (~100 ns) scaled so local = 10, capped at 254
// (255 means unreachable). Any remote latency yields at least 11.
std::uint8_t slit_distance(std::uint64_t remote_latency_ns);

// Byte sum of `bytes` (0 for a table with a correct checksum).
std::uint8_t acpi_sum(std::span<const std::uint8_t> bytes);

}  // namespace ssi::machine
