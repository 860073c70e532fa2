#include "ssi/acpi.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "ssi/subprocess.hpp"

namespace ssi::machine {
namespace {

template <typename T>
T get(const std::vector<std::uint8_t>& b, std::size_t off) {
  T v{};
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}

// Two nodes of two vCPUs over 512 MiB: the 2 x 2 configuration.
AcpiConfig two_by_two(const MemoryMap& map) {
  return {.cpus = 4,
          .cpu_node = {0, 0, 1, 1},
          .node_memory = node_memory(map, 2),
          .remote_distance = 40};
}

std::map<std::string, const AcpiTable*> by_signature(const AcpiTables& t) {
  std::map<std::string, const AcpiTable*> m;
  for (const auto& x : t.tables) m[x.signature] = &x;
  return m;
}

TEST(AcpiTest, EveryChecksumIsCorrect) {
  auto map = MemoryMap::pc(512 * kMiB).value();
  auto t = build_acpi(two_by_two(map));
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  ASSERT_EQ(t->tables.size(), 7u);
  for (const auto& x : t->tables) {
    EXPECT_EQ(acpi_sum(x.bytes), 0) << x.signature;
    EXPECT_GE(x.gpa, kAcpiGpa);
    EXPECT_LE(x.gpa + x.bytes.size(), kAcpiGpa + kAcpiSize);
    EXPECT_EQ(x.gpa % 16, 0u) << x.signature;
    if (x.signature != "RSD PTR ") {
      EXPECT_EQ(get<std::uint32_t>(x.bytes, 4), x.bytes.size()) << x.signature;
      EXPECT_EQ(std::string(x.bytes.begin(), x.bytes.begin() + 4), x.signature);
    }
  }
  const auto& rsdp = t->tables[0].bytes;
  EXPECT_EQ(acpi_sum(std::span(rsdp).subspan(0, 20)), 0) << "ACPI 1.0 checksum";
  EXPECT_EQ(t->rsdp_gpa, kAcpiGpa);
}

TEST(AcpiTest, PointersLinkRsdpXsdtFadtDsdt) {
  auto map = MemoryMap::pc(512 * kMiB).value();
  auto t = build_acpi(two_by_two(map)).value();
  auto sig = by_signature(t);
  EXPECT_EQ(get<std::uint64_t>(sig["RSD PTR "]->bytes, 24), sig["XSDT"]->gpa);
  const auto& x = sig["XSDT"]->bytes;
  ASSERT_EQ(x.size(), 36u + 4 * 8);
  EXPECT_EQ(get<std::uint64_t>(x, 36), sig["FACP"]->gpa);
  EXPECT_EQ(get<std::uint64_t>(x, 44), sig["APIC"]->gpa);
  EXPECT_EQ(get<std::uint64_t>(x, 52), sig["SRAT"]->gpa);
  EXPECT_EQ(get<std::uint64_t>(x, 60), sig["SLIT"]->gpa);
  const auto& f = sig["FACP"]->bytes;
  EXPECT_EQ(f.size(), 276u);
  EXPECT_EQ(get<std::uint64_t>(f, 140), sig["DSDT"]->gpa);
  EXPECT_NE(get<std::uint32_t>(f, 112) & (1u << 20), 0u) << "HW_REDUCED_ACPI";
}

TEST(AcpiTest, MadtHasOneLapicPerVcpuAndTheIoapic) {
  auto t = build_acpi({.cpus = 3, .node_memory = {{{0, 64 * kMiB}}}}).value();
  const auto& m = by_signature(t)["APIC"]->bytes;
  EXPECT_EQ(get<std::uint32_t>(m, 36), kLapicBase);
  std::vector<int> apic_ids;
  int ioapics = 0;
  for (std::size_t off = 44; off < m.size(); off += m[off + 1]) {
    ASSERT_GT(m[off + 1], 0);
    if (m[off] == 0) {
      apic_ids.push_back(m[off + 3]);
      EXPECT_EQ(get<std::uint32_t>(m, off + 4), 1u) << "enabled";
    }
    if (m[off] == 1) {
      ++ioapics;
      EXPECT_EQ(get<std::uint32_t>(m, off + 4), kIoApicBase);
    }
  }
  EXPECT_EQ(apic_ids, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(ioapics, 1);
}

TEST(AcpiTest, SratPutsEachNodesCpusAndMemoryInItsDomain) {
  auto map = MemoryMap::pc(512 * kMiB).value();
  auto t = build_acpi(two_by_two(map)).value();
  const auto& s = by_signature(t)["SRAT"]->bytes;
  std::map<int, int> cpu_domain;
  std::vector<std::tuple<int, std::uint64_t, std::uint64_t>> mem;
  for (std::size_t off = 48; off < s.size(); off += s[off + 1]) {
    if (s[off] == 0) cpu_domain[s[off + 3]] = s[off + 2];
    if (s[off] == 1) {
      mem.emplace_back(get<std::uint32_t>(s, off + 2), get<std::uint64_t>(s, off + 8),
                       get<std::uint64_t>(s, off + 16));
    }
  }
  EXPECT_EQ(cpu_domain, (std::map<int, int>{{0, 0}, {1, 0}, {2, 1}, {3, 1}}));
  ASSERT_EQ(mem.size(), 2u);
  EXPECT_EQ(mem[0], std::make_tuple(0, 0ull, 256 * kMiB));
  EXPECT_EQ(mem[1], std::make_tuple(1, 256 * kMiB, 256 * kMiB));
  const auto& l = by_signature(t)["SLIT"]->bytes;
  EXPECT_EQ(get<std::uint64_t>(l, 36), 2u);
  EXPECT_EQ(std::vector<int>(l.begin() + 44, l.end()), (std::vector<int>{10, 40, 40, 10}));
}

TEST(AcpiTest, NodeMemorySplitsLikeTheDsmHomeMapAcrossThePciHole) {
  // 5 GiB: RAM [0, 3 GiB) and [4 GiB, 6 GiB); 3 nodes of 5/3 GiB each.
  auto map = MemoryMap::pc(5 * kGiB).value();
  auto n = node_memory(map, 3);
  ASSERT_EQ(n.size(), 3u);
  const std::uint64_t pages = 5 * kGiB / 4096, per = pages / 3, extra = pages % 3;
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    std::uint64_t bytes = 0;
    for (const auto& r : n[i]) bytes += r.size;
    EXPECT_EQ(bytes, (per + (i < extra ? 1 : 0)) * 4096) << "node " << i;
    total += bytes;
  }
  EXPECT_EQ(total, 5 * kGiB);
  ASSERT_EQ(n[1].size(), 2u) << "node 1 straddles the PCI hole";
  EXPECT_EQ(n[1][0].base + n[1][0].size, kPciHoleStart);
  EXPECT_EQ(n[1][1].base, kHighRamStart);
  EXPECT_EQ(n[0][0].base, 0u);
}

TEST(AcpiTest, SlitDistanceGrowsWithLatencyAndStaysValid) {
  EXPECT_EQ(slit_distance(0), 11);
  EXPECT_EQ(slit_distance(100), 20);  // twice a local access
  EXPECT_EQ(slit_distance(1000), 110);
  EXPECT_EQ(slit_distance(50'000), 254);  // a DSM page fetch: capped, never 255
}

TEST(AcpiTest, RejectsBadConfigs) {
  EXPECT_FALSE(build_acpi({.cpus = 0, .node_memory = {{{0, kMiB}}}}).ok());
  EXPECT_FALSE(build_acpi({.cpus = 2, .cpu_node = {0}, .node_memory = {{{0, kMiB}}}}).ok());
  EXPECT_FALSE(build_acpi({.cpus = 1, .cpu_node = {1}, .node_memory = {{{0, kMiB}}}}).ok());
  EXPECT_FALSE(
      build_acpi({.cpus = 1, .node_memory = {{{0, kMiB}}, {{kMiB, kMiB}}}, .remote_distance = 10})
          .ok());
  auto tiny = build_acpi({.cpus = 64, .node_memory = {{{0, kMiB}}}}, kAcpiGpa, 256);
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.error().message.find("more than the 256 reserved"), std::string::npos);
}

// The reference check: ACPICA's disassembler reads every table without an
// error or warning, and sees the vCPUs, nodes and distances we configured.
// The RSDP is left out: iasl reads the "PTR " of its signature as a table
// length and refuses a raw RSDP file; the tests above decode it instead.
TEST(AcpiTest, IaslDisassemblesEveryTable) {
  if (::access(SSI_IASL, X_OK) != 0) GTEST_SKIP() << "iasl not installed (acpica-tools)";
  char tmpl[] = "/tmp/ssi-acpi-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto map = MemoryMap::pc(512 * kMiB).value();
  auto t = build_acpi(two_by_two(map)).value();
  std::map<std::string, std::string> dsl;
  for (const auto& x : t.tables) {
    if (x.signature == "RSD PTR ") continue;
    const std::string& name = x.signature;
    std::string path = dir + "/" + name + ".dat";
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(x.bytes.data()),
               static_cast<std::streamsize>(x.bytes.size()));
    auto o = ssi::testing::run_process(SSI_IASL, {"-d", path}, {}, std::chrono::seconds(30));
    EXPECT_EQ(o.exit_code, 0) << name << ":\n" << o.out << o.err;
    EXPECT_EQ(o.out.find("Error"), std::string::npos) << name << ":\n" << o.out;
    EXPECT_EQ(o.out.find("Warning"), std::string::npos) << name << ":\n" << o.out;
    std::ifstream in(dir + "/" + name + ".dsl");
    std::stringstream ss;
    ss << in.rdbuf();
    dsl[name] = ss.str();
    EXPECT_FALSE(dsl[name].empty()) << name << ": no .dsl written";
    EXPECT_EQ(dsl[name].find("ncorrect checksum"), std::string::npos) << dsl[name];
    EXPECT_EQ(dsl[name].find("**** "), std::string::npos) << "iasl flagged:\n" << dsl[name];
  }
  auto count = [](const std::string& s, const std::string& what) {
    int n = 0;
    for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(dsl["APIC"], "[Processor Local APIC]"), 4) << dsl["APIC"];
  EXPECT_EQ(count(dsl["APIC"], "[I/O APIC]"), 1) << dsl["APIC"];
  EXPECT_EQ(count(dsl["SRAT"], "[Processor Local APIC/SAPIC Affinity]"), 4) << dsl["SRAT"];
  EXPECT_EQ(count(dsl["SRAT"], "[Memory Affinity]"), 2) << dsl["SRAT"];
  EXPECT_NE(dsl["SLIT"].find("Localities : 0000000000000002"), std::string::npos) << dsl["SLIT"];
  EXPECT_NE(dsl["SLIT"].find("Locality   0 : 0A 28"), std::string::npos) << dsl["SLIT"];
  EXPECT_NE(dsl["FACP"].find("Hardware Reduced (V5) : 1"), std::string::npos) << dsl["FACP"];
  // The DSDT's AML decodes to the COM1 device with its port range and IRQ 4.
  EXPECT_NE(dsl["DSDT"].find("Device (COM1)"), std::string::npos) << dsl["DSDT"];
  EXPECT_NE(dsl["DSDT"].find("EisaId (\"PNP0501\")"), std::string::npos) << dsl["DSDT"];
  EXPECT_NE(dsl["DSDT"].find("0x03F8"), std::string::npos) << dsl["DSDT"];
  EXPECT_NE(dsl["DSDT"].find("IRQNoFlags ()\n                    {4}"), std::string::npos)
      << dsl["DSDT"];
  // And the CMOS RTC at 0x70 with IRQ 8; the FADT points at its century byte.
  EXPECT_NE(dsl["DSDT"].find("Device (RTC)"), std::string::npos) << dsl["DSDT"];
  EXPECT_NE(dsl["DSDT"].find("EisaId (\"PNP0B00\")"), std::string::npos) << dsl["DSDT"];
  EXPECT_NE(dsl["DSDT"].find("0x0070"), std::string::npos) << dsl["DSDT"];
  EXPECT_NE(dsl["DSDT"].find("IRQNoFlags ()\n                    {8}"), std::string::npos)
      << dsl["DSDT"];
  EXPECT_NE(dsl["FACP"].find("Century Index : 32"), std::string::npos) << dsl["FACP"];
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace ssi::machine
