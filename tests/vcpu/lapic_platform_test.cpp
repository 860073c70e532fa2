// The architectural corners a foreign guest probes (issue 19): APIC_BASE
// state machine, x2APIC MSR access rules, logical destination models.
#include "lapic_fixture.hpp"
#include "vcpu/kvm.hpp"

namespace ssi::vcpu::testing {
namespace {

namespace r = apic_reg;
constexpr std::uint64_t kBase = 0xFEE00000, kBsp = 1u << 8, kExtd = 1u << 10, kEn = 1u << 11;

using LapicPlatformTest = LapicFixture;

TEST_F(LapicPlatformTest, ApicBaseTransitionsFollowTheSdmStateMachine) {
  Lapic l(config(), clock, sink, &timers);
  EXPECT_FALSE(l.msr_write(kMsrApicBase, kBase | kExtd).ok()) << "EXTD without EN is invalid";
  ASSERT_TRUE(l.msr_write(kMsrApicBase, kBase).ok()) << "xAPIC -> disabled";
  EXPECT_FALSE(l.msr_write(kMsrApicBase, kBase | kEn | kExtd).ok()) << "disabled -> x2APIC";
  ASSERT_TRUE(l.msr_write(kMsrApicBase, kBase | kEn).ok()) << "disabled -> xAPIC";
  ASSERT_TRUE(l.msr_write(kMsrApicBase, kBase | kEn | kExtd).ok()) << "xAPIC -> x2APIC";
  EXPECT_FALSE(l.msr_write(kMsrApicBase, kBase | kEn).ok()) << "x2APIC -> xAPIC";
  ASSERT_TRUE(l.msr_write(kMsrApicBase, kBase).ok()) << "x2APIC -> disabled";
  EXPECT_EQ(l.msr_read(kMsrApicBase).value(), kBase | kBsp) << "BSP bit is kept";
}

TEST_F(LapicPlatformTest, ApicBaseReservedBitsGp) {
  Lapic l(config(), clock, sink, &timers);
  l.set_features({.phys_bits = 40, .x2apic = false});
  for (std::uint64_t bad : {1ull, 1ull << 9, 1ull << 40, 1ull << 63}) {
    EXPECT_FALSE(l.msr_write(kMsrApicBase, kBase | kEn | bad).ok()) << std::hex << bad;
  }
  EXPECT_FALSE(l.msr_write(kMsrApicBase, kBase | kEn | kExtd).ok()) << "no x2APIC in CPUID";
  ASSERT_TRUE(l.msr_write(kMsrApicBase, (1ull << 39) | kEn).ok()) << "below MAXPHYADDR";
  EXPECT_TRUE(l.mmio_hit((1ull << 39) | 0x80)) << "the MMIO page moved with the base";
  EXPECT_FALSE(l.mmio_hit(kBase | 0x80));
}

TEST_F(LapicPlatformTest, DisabledApicKeepsItsRegistersAndSoftwareDisables) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, 0x1FF);
  mmio_write32(l, r::kTpr, 0x40);
  ASSERT_TRUE(l.msr_write(kMsrApicBase, kBase | kBsp).ok());
  EXPECT_TRUE(l.mmio_hit(kBase + r::kTpr)) << "QEMU still decodes the page";
  EXPECT_EQ(mmio_read32(l, r::kTpr), 0x40u) << "TPR reads what was written";
  EXPECT_EQ(mmio_read32(l, r::kSvr) & 0x100, 0u) << "SVR.8 cleared by the global disable";
  l.raise(0x80);
  EXPECT_FALSE(l.pending_vector().has_value()) << "a disabled APIC delivers nothing";
}

TEST_F(LapicPlatformTest, EveryX2apicMsrGpsOutsideX2apicMode) {
  Lapic l(config(), clock, sink, &timers);
  for (std::uint32_t msr = kX2apicMsrFirst; msr <= kX2apicMsrLast; ++msr) {
    EXPECT_FALSE(l.msr_read(msr).ok()) << std::hex << msr;
    EXPECT_FALSE(l.msr_write(msr, 0).ok()) << std::hex << msr;
  }
  EXPECT_TRUE(sink.take().empty()) << "SELF_IPI in xAPIC mode sends nothing";
}

TEST_F(LapicPlatformTest, X2apicReadOnlyWriteOnlyAndReservedRules) {
  Lapic l(config(5), clock, sink, &timers);
  ASSERT_TRUE(l.msr_write(kMsrApicBase, kBase | kEn | kExtd).ok());
  for (std::uint32_t msr : {0x802u, 0x803u, 0x80Au, 0x80Du, 0x810u, 0x818u, 0x820u, 0x839u})
    EXPECT_FALSE(l.msr_write(msr, 0).ok()) << "read-only " << std::hex << msr;
  for (std::uint32_t msr : {0x80Bu, 0x83Fu})
    EXPECT_FALSE(l.msr_read(msr).ok()) << "write-only " << std::hex << msr;
  for (std::uint32_t msr : {0x800u, 0x804u, 0x809u, 0x80Cu, 0x80Eu, 0x829u, 0x831u, 0x83Au,
                            0x840u, 0x8FFu}) {
    EXPECT_FALSE(l.msr_read(msr).ok()) << "reserved " << std::hex << msr;
    EXPECT_FALSE(l.msr_write(msr, 0).ok()) << "reserved " << std::hex << msr;
  }
  EXPECT_FALSE(l.msr_write(0x808, 0x100).ok()) << "TPR bits 31:8";
  EXPECT_FALSE(l.msr_write(0x808, 1ull << 32).ok()) << "upper half of a 32-bit register";
  EXPECT_FALSE(l.msr_write(0x828, 1).ok()) << "ESR takes only 0";
  EXPECT_FALSE(l.msr_write(0x83F, 0x100).ok()) << "SELF_IPI bits 31:8";
  EXPECT_FALSE(l.msr_write(0x83E, 0x4).ok()) << "DCR bit 2";
  EXPECT_FALSE(l.msr_write(0x830, 1u << 12).ok()) << "ICR delivery status is reserved";
  EXPECT_TRUE(sink.take().empty());
  ASSERT_TRUE(l.msr_write(0x832, 0x10030).ok()) << "LVT timer: masked, vector 0x30";
  EXPECT_EQ(l.msr_read(0x832).value(), 0x10030u);
  ASSERT_TRUE(l.msr_write(0x830, (7ull << 32) | 0x4031).ok());
  EXPECT_EQ(l.msr_read(0x830).value(), (7ull << 32) | 0x4031) << "ICR reads back 64 bits";
}

TEST_F(LapicPlatformTest, XapicFlatAndClusterLogicalDestinations) {
  Lapic l(config(3), clock, sink, &timers);
  Ipi ipi;
  ipi.logical = true;
  ipi.source_apic_id = 0;
  mmio_write32(l, r::kLdr, 0x04000000);  // flat: member bit 2
  for (auto [dest, hit] : {std::pair{0x0Cu, true}, {0x03u, false}, {0xFFu, true}}) {
    ipi.destination = dest;
    EXPECT_EQ(l.targeted_by(ipi), hit) << "flat dest " << std::hex << dest;
  }
  mmio_write32(l, r::kLdr, 0);
  ipi.destination = 0xFF;
  EXPECT_FALSE(l.targeted_by(ipi)) << "logical 0xFF needs a bit of the LDR";
  mmio_write32(l, r::kDfr, 0x0FFFFFFF);  // cluster model
  EXPECT_EQ(mmio_read32(l, r::kDfr), 0x0FFFFFFFu);
  mmio_write32(l, r::kLdr, 0x21000000);  // cluster 2, member bit 0
  for (auto [dest, hit] : {std::pair{0x21u, true}, {0x23u, true}, {0x11u, false},
                           {0x22u, false}, {0xF1u, true}}) {
    ipi.destination = dest;
    EXPECT_EQ(l.targeted_by(ipi), hit) << "cluster dest " << std::hex << dest;
  }
}

TEST_F(LapicPlatformTest, EoiOfALevelVectorIsBroadcastOnce) {
  Lapic l(config(), clock, sink, &timers);
  std::vector<std::uint8_t> eois;
  l.set_level_eoi([&](std::uint8_t v) { eois.push_back(v); });
  mmio_write32(l, r::kSvr, 0x1FF);
  l.raise(0x41, /*level=*/true);
  l.acknowledge(0x41);
  l.raise(0x30);
  l.acknowledge(0x30);  // edge, lower priority, also in service
  mmio_write32(l, r::kEoi, 0);
  EXPECT_EQ(eois, std::vector<std::uint8_t>{0x41}) << "highest in service: the level one";
  mmio_write32(l, r::kEoi, 0);
  EXPECT_EQ(eois, std::vector<std::uint8_t>{0x41}) << "edge EOIs are not broadcast";
}

TEST(LapicFeaturesTest, ComeFromCpuid) {
  kvm_cpuid_entry2 leaf1{}, ext8{};
  leaf1.function = 1;
  leaf1.ecx = 1u << 21;
  ext8.function = 0x80000008;
  ext8.eax = 0x3028;  // 48 virtual, 40 physical
  auto f = lapic_features({leaf1, ext8});
  EXPECT_TRUE(f.x2apic);
  EXPECT_EQ(f.phys_bits, 40u);
  auto none = lapic_features({});
  EXPECT_FALSE(none.x2apic);
  EXPECT_EQ(none.phys_bits, 36u);
}

}  // namespace
}  // namespace ssi::vcpu::testing
