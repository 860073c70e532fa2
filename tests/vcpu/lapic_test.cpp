#include "lapic_fixture.hpp"

namespace ssi::vcpu::testing {
namespace {

namespace r = apic_reg;
constexpr std::uint32_t kSvrOn = 0x1FF;  // software enable, spurious vector 0xFF

using LapicTest = LapicFixture;

TEST_F(LapicTest, ResetValuesAndIdentity) {
  Lapic l(config(3), clock, sink, &timers);
  EXPECT_EQ(mmio_read32(l, r::kId), 3u << 24);
  EXPECT_EQ(mmio_read32(l, r::kVersion), 0x50014u);
  EXPECT_EQ(mmio_read32(l, r::kSvr), 0xFFu);
  EXPECT_EQ(mmio_read32(l, r::kDfr), 0xFFFFFFFFu);
  EXPECT_EQ(mmio_read32(l, r::kLvtTimer), 1u << 16) << "LVTs start masked";
  EXPECT_EQ(l.msr_read(kMsrApicBase).value(), 0xFEE00000u | (1u << 11) | (1u << 8)) << "BSP, enabled";
  Lapic ap(config(1, /*bsp=*/false), clock, sink, &timers);
  EXPECT_EQ(ap.msr_read(kMsrApicBase).value(), 0xFEE00000u | (1u << 11));
  EXPECT_TRUE(ap.waiting_for_sipi());
  EXPECT_FALSE(l.waiting_for_sipi());
}

TEST_F(LapicTest, MmioHitOnlyInsideTheApicPage) {
  Lapic l(config(), clock, sink, &timers);
  EXPECT_TRUE(l.mmio_hit(0xFEE00000));
  EXPECT_TRUE(l.mmio_hit(0xFEE00FFF));
  EXPECT_FALSE(l.mmio_hit(0xFEE01000));
  EXPECT_FALSE(l.mmio_hit(0xFEC00000));
  // Relocated via APIC_BASE.
  ASSERT_TRUE(l.msr_write(kMsrApicBase, 0xFED00000 | (1u << 11)).ok());
  EXPECT_TRUE(l.mmio_hit(0xFED00020));
  EXPECT_FALSE(l.mmio_hit(0xFEE00020));
}

TEST_F(LapicTest, WritableRegistersKeepOnlyTheirBits) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kTpr, 0xFFFFFF45);
  EXPECT_EQ(mmio_read32(l, r::kTpr), 0x45u);
  mmio_write32(l, r::kLdr, 0xFFFFFFFF);
  EXPECT_EQ(mmio_read32(l, r::kLdr), 0xFF000000u);
  mmio_write32(l, r::kSvr, 0x1FF);
  EXPECT_EQ(mmio_read32(l, r::kSvr), 0x1FFu);  // SVR read-modify-write: KVM fact #2, docs/vcpu.md
  mmio_write32(l, r::kLvtLint0, 0x700);         // ExtINT, unmasked
  EXPECT_EQ(mmio_read32(l, r::kLvtLint0), 0x700u);
  mmio_write32(l, r::kTimerDivide, 0xFFFFFFFF);
  EXPECT_EQ(mmio_read32(l, r::kTimerDivide), 0xBu);
  mmio_write32(l, r::kVersion, 0);  // read-only
  EXPECT_EQ(mmio_read32(l, r::kVersion), 0x50014u);
  mmio_write32(l, r::kIcrHigh, 0x02FFFFFF);
  EXPECT_EQ(mmio_read32(l, r::kIcrHigh), 0x02000000u);
}

TEST_F(LapicTest, SubDwordAccessesSeeTheRightBytes) {
  Lapic l(config(0x12), clock, sink, &timers);
  std::uint8_t b = 0;
  l.mmio_read(kLapicDefaultBase + r::kId + 3, std::span(&b, 1));
  EXPECT_EQ(b, 0x12);
  std::uint8_t eight[8];
  std::memset(eight, 0xAA, 8);
  l.mmio_read(kLapicDefaultBase + r::kVersion, eight);
  EXPECT_EQ(eight[0], 0x14);
  EXPECT_EQ(eight[2], 0x05);
  EXPECT_EQ(eight[4], 0) << "bytes past the register read 0";
}

TEST_F(LapicTest, PendingVectorNeedsSoftwareEnable) {
  Lapic l(config(), clock, sink, &timers);
  l.raise(0x40);
  EXPECT_FALSE(l.pending_vector()) << "SVR bit 8 clear: held, not delivered";
  mmio_write32(l, r::kSvr, kSvrOn);
  EXPECT_EQ(l.pending_vector(), 0x40);
  EXPECT_EQ(mmio_read32(l, r::kIrr + 0x20), 1u << 0) << "IRR bit 64 = reg 2 bit 0";
}

TEST_F(LapicTest, EoiUnwindsNestedInterruptsHighestFirst) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, kSvrOn);
  l.raise(0x41);
  ASSERT_EQ(l.pending_vector(), 0x41);
  l.acknowledge(0x41);
  EXPECT_EQ(mmio_read32(l, r::kPpr), 0x40u);
  l.raise(0x45);  // same priority class as the one in service: must wait
  EXPECT_FALSE(l.pending_vector());
  l.raise(0x61);  // higher class: nests
  ASSERT_EQ(l.pending_vector(), 0x61);
  l.acknowledge(0x61);
  EXPECT_EQ(mmio_read32(l, r::kPpr), 0x60u);
  EXPECT_EQ(mmio_read32(l, r::kIsr + 0x30), (1u << 1));            // 0x61
  EXPECT_EQ(mmio_read32(l, r::kIsr + 0x20), (1u << 1));            // 0x41
  mmio_write32(l, r::kEoi, 0);  // ends 0x61
  EXPECT_EQ(mmio_read32(l, r::kIsr + 0x30), 0u);
  EXPECT_EQ(mmio_read32(l, r::kIsr + 0x20), (1u << 1));
  EXPECT_FALSE(l.pending_vector()) << "0x45 still blocked by 0x41 in service";
  mmio_write32(l, r::kEoi, 0);  // ends 0x41
  EXPECT_EQ(l.pending_vector(), 0x45);
  EXPECT_EQ(mmio_read32(l, r::kPpr), 0u);
}

TEST_F(LapicTest, TprMasksLowerPriorityClasses) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, kSvrOn);
  mmio_write32(l, r::kTpr, 0x50);
  l.raise(0x50);
  EXPECT_FALSE(l.pending_vector()) << "class 5 == TPR class: masked";
  EXPECT_EQ(mmio_read32(l, r::kPpr), 0x50u);
  l.raise(0x61);
  EXPECT_EQ(l.pending_vector(), 0x61);
  l.acknowledge(0x61);
  mmio_write32(l, r::kEoi, 0);
  mmio_write32(l, r::kTpr, 0x00);
  EXPECT_EQ(l.pending_vector(), 0x50);
}

TEST_F(LapicTest, IllegalVectorsSetEsrAndAreDropped) {
  Lapic l(config(), clock, sink, &timers);
  mmio_write32(l, r::kSvr, kSvrOn);
  l.raise(3);
  EXPECT_FALSE(l.pending_vector());
  EXPECT_NE(mmio_read32(l, r::kEsr), 0u);
  mmio_write32(l, r::kEsr, 0);
  EXPECT_EQ(mmio_read32(l, r::kEsr), 0u);
}

TEST_F(LapicTest, IcrWriteSendsIpiToTheSink) {
  Lapic l(config(2), clock, sink, &timers);
  mmio_write32(l, r::kIcrHigh, 1u << 24);
  mmio_write32(l, r::kIcrLow, 0x4031);  // fixed, vector 0x31, assert, physical
  auto ipis = sink.take();
  ASSERT_EQ(ipis.size(), 1u);
  EXPECT_EQ(ipis[0].source, VcpuId{2});
  EXPECT_EQ(ipis[0].source_apic_id, 2u);
  EXPECT_EQ(ipis[0].mode, DeliveryMode::kFixed);
  EXPECT_EQ(ipis[0].vector, 0x31);
  EXPECT_EQ(ipis[0].destination, 1u);
  EXPECT_EQ(ipis[0].shorthand, DestShorthand::kNone);
  EXPECT_FALSE(ipis[0].logical);
  EXPECT_EQ(mmio_read32(l, r::kIcrLow) & (1u << 12), 0u) << "delivery status idle";
}

TEST_F(LapicTest, IcrShorthandsAndModes) {
  Lapic l(config(0), clock, sink, &timers);
  mmio_write32(l, r::kIcrLow, 0x000C4500);  // INIT, assert, all-but-self
  mmio_write32(l, r::kIcrLow, 0x000C8500);  // INIT level de-assert: ignored
  mmio_write32(l, r::kIcrLow, 0x000C4608);  // SIPI vector 8, all-but-self
  mmio_write32(l, r::kIcrLow, 0x00084400);  // NMI, all including self
  mmio_write32(l, r::kIcrLow, 0x00044022);  // fixed 0x22, self
  auto ipis = sink.take();
  ASSERT_EQ(ipis.size(), 4u);
  EXPECT_EQ(ipis[0].mode, DeliveryMode::kInit);
  EXPECT_EQ(ipis[0].shorthand, DestShorthand::kAllExcludingSelf);
  EXPECT_EQ(ipis[1].mode, DeliveryMode::kStartup);
  EXPECT_EQ(ipis[1].vector, 8);
  EXPECT_EQ(ipis[2].mode, DeliveryMode::kNmi);
  EXPECT_EQ(ipis[2].shorthand, DestShorthand::kAllIncludingSelf);
  EXPECT_EQ(ipis[3].shorthand, DestShorthand::kSelf);
}

TEST_F(LapicTest, IpiTargetsRoutingRules) {
  Ipi ipi;
  ipi.source_apic_id = 0;
  ipi.destination = 2;
  EXPECT_TRUE(ipi_targets(ipi, 2, 0, false));
  EXPECT_FALSE(ipi_targets(ipi, 1, 0, false));
  ipi.destination = 0xFF;
  EXPECT_TRUE(ipi_targets(ipi, 7, 0, false)) << "xAPIC physical broadcast";
  EXPECT_FALSE(ipi_targets(ipi, 7, 0, true)) << "0xFF is a real id in x2APIC";
  ipi.shorthand = DestShorthand::kAllExcludingSelf;
  EXPECT_FALSE(ipi_targets(ipi, 0, 0, false));
  EXPECT_TRUE(ipi_targets(ipi, 1, 0, false));
  ipi.shorthand = DestShorthand::kSelf;
  EXPECT_TRUE(ipi_targets(ipi, 0, 0, false));
  EXPECT_FALSE(ipi_targets(ipi, 1, 0, false));
  ipi.shorthand = DestShorthand::kNone;
  ipi.logical = true;
  ipi.destination = 0x06;  // flat logical: CPUs with LDR bit 1 or 2
  EXPECT_TRUE(ipi_targets(ipi, 5, 0x04000000, false));
  EXPECT_FALSE(ipi_targets(ipi, 5, 0x01000000, false));
  ipi.destination = 0x00010002;  // x2APIC cluster 1, member bit 1
  EXPECT_TRUE(ipi_targets(ipi, 17, (1u << 16) | 2, true));
  EXPECT_FALSE(ipi_targets(ipi, 1, 2, true));
}

TEST_F(LapicTest, ApWaitsForSipiAfterInit) {
  Lapic ap(config(1, false), clock, sink, &timers);
  int wakeups = 0;
  ap.set_wakeup([&] { ++wakeups; });
  Ipi sipi;
  sipi.mode = DeliveryMode::kStartup;
  sipi.vector = 0x09;
  ap.deliver(sipi);  // APs start in wait-for-SIPI
  auto ev = ap.take_startup();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->kind, StartupEvent::Kind::kSipi);
  EXPECT_EQ(ev->vector, 0x09);
  EXPECT_FALSE(ap.waiting_for_sipi());
  ap.deliver(sipi);  // a second SIPI without INIT is ignored
  EXPECT_FALSE(ap.take_startup());
  Ipi init;
  init.mode = DeliveryMode::kInit;
  ap.deliver(init);
  ev = ap.take_startup();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->kind, StartupEvent::Kind::kInit);
  EXPECT_TRUE(ap.waiting_for_sipi());
  sipi.vector = 0x10;
  ap.deliver(sipi);
  ev = ap.take_startup();
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->vector, 0x10);
  EXPECT_EQ(wakeups, 3);
}

TEST_F(LapicTest, InitResetsRegistersButKeepsId) {
  Lapic l(config(4, false), clock, sink, &timers);
  mmio_write32(l, r::kSvr, kSvrOn);
  mmio_write32(l, r::kTpr, 0x30);
  Ipi init;
  init.mode = DeliveryMode::kInit;
  l.deliver(init);
  EXPECT_EQ(mmio_read32(l, r::kSvr), 0xFFu);
  EXPECT_EQ(mmio_read32(l, r::kTpr), 0u);
  EXPECT_EQ(mmio_read32(l, r::kId), 4u << 24);
}

TEST_F(LapicTest, NmiIsTakenOnce) {
  Lapic l(config(), clock, sink, &timers);
  Ipi nmi;
  nmi.mode = DeliveryMode::kNmi;
  l.deliver(nmi);
  EXPECT_TRUE(l.has_wake_event());
  EXPECT_TRUE(l.take_nmi());
  EXPECT_FALSE(l.take_nmi());
}

TEST_F(LapicTest, NmisBeforeThePendingOneIsTakenLatchIntoItWithoutWakingAgain) {
  Lapic l(config(), clock, sink, &timers);
  int wakes = 0;
  l.set_wakeup([&] { ++wakes; });
  Ipi nmi;
  nmi.mode = DeliveryMode::kNmi;
  for (int i = 0; i < 100; ++i) l.deliver(nmi);
  EXPECT_EQ(wakes, 1) << "a burst of NMIs before the first is taken is one NMI";
  EXPECT_TRUE(l.take_nmi());
  EXPECT_FALSE(l.take_nmi());
  l.deliver(nmi);
  EXPECT_EQ(wakes, 2) << "an NMI after the pending one was taken wakes again";
  EXPECT_TRUE(l.take_nmi());
}

TEST_F(LapicTest, X2apicMsrsOnlyInX2apicMode) {
  Lapic l(config(0x21), clock, sink, &timers);
  EXPECT_FALSE(l.msr_read(0x802).ok()) << "#GP while in xAPIC mode";
  ASSERT_TRUE(l.msr_write(kMsrApicBase, 0xFEE00000 | (1u << 11) | (1u << 10)).ok());
  EXPECT_TRUE(l.x2apic_mode());
  EXPECT_FALSE(l.mmio_hit(0xFEE00020)) << "no MMIO in x2APIC mode";
  EXPECT_EQ(l.msr_read(0x802).value(), 0x21u) << "full 32-bit id";
  EXPECT_EQ(l.msr_read(0x803).value(), 0x50014u);
  EXPECT_EQ(l.msr_read(0x80D).value(), (2u << 16) | (1u << 1)) << "derived LDR: cluster 2, bit 1";
  EXPECT_FALSE(l.msr_write(0x802, 5).ok()) << "ID is read-only";
  EXPECT_FALSE(l.msr_write(0x80B, 1).ok()) << "EOI needs 0";
  EXPECT_FALSE(l.msr_read(0x80B).ok()) << "EOI is write-only";
  ASSERT_TRUE(l.msr_write(0x80F, 0x1FF).ok());
  ASSERT_TRUE(l.msr_write(0x808, 0x20).ok());
  EXPECT_EQ(l.msr_read(0x808).value(), 0x20u);
  // ICR is one 64-bit MSR with a 32-bit destination.
  ASSERT_TRUE(l.msr_write(0x830, (0x105ull << 32) | 0x40FD).ok());
  auto ipis = sink.take();
  ASSERT_EQ(ipis.size(), 1u);
  EXPECT_EQ(ipis[0].destination, 0x105u);
  EXPECT_EQ(ipis[0].vector, 0xFD);
  // Self IPI.
  ASSERT_TRUE(l.msr_write(0x83F, 0x77).ok());
  ipis = sink.take();
  ASSERT_EQ(ipis.size(), 1u);
  EXPECT_EQ(ipis[0].shorthand, DestShorthand::kSelf);
  EXPECT_EQ(ipis[0].vector, 0x77);
  // Back to xAPIC directly is illegal; through disabled is fine.
  EXPECT_FALSE(l.msr_write(kMsrApicBase, 0xFEE00000 | (1u << 11)).ok());
  EXPECT_TRUE(l.msr_write(kMsrApicBase, 0xFEE00000).ok());
  EXPECT_TRUE(l.msr_write(kMsrApicBase, 0xFEE00000 | (1u << 11)).ok());
  EXPECT_FALSE(l.msr_write(kMsrApicBase, 0xFEE00000 | (1u << 10)).ok()) << "EXTD without EN";
}

TEST_F(LapicTest, X2apicEoiAndIsrViaMsrs) {
  Lapic l(config(), clock, sink, &timers);
  ASSERT_TRUE(l.msr_write(kMsrApicBase, 0xFEE00000 | (3u << 10)).ok());
  ASSERT_TRUE(l.msr_write(0x80F, 0x1FF).ok());
  l.raise(0x80);
  ASSERT_EQ(l.pending_vector(), 0x80);
  l.acknowledge(0x80);
  EXPECT_EQ(l.msr_read(0x814).value(), 1u) << "ISR bits 128..159";
  EXPECT_EQ(l.msr_read(0x80A).value(), 0x80u) << "PPR";
  ASSERT_TRUE(l.msr_write(0x80B, 0).ok());
  EXPECT_EQ(l.msr_read(0x814).value(), 0u);
}

TEST_F(LapicTest, SaveRestoreRoundTrip) {
  Lapic a(config(1, false), clock, sink, &timers);
  mmio_write32(a, r::kSvr, kSvrOn);
  mmio_write32(a, r::kTpr, 0x20);
  a.raise(0x55);
  mmio_write32(a, r::kLvtTimer, 0x30);
  mmio_write32(a, r::kTimerDivide, 0xB);
  mmio_write32(a, r::kTimerInitial, 1000);
  clock.advance(std::chrono::nanoseconds(300));
  auto st = a.save();
  EXPECT_EQ(st.timer_remaining_ns, 700);
  ssi::testing::FakeClock other;  // another host's clock
  other.advance(std::chrono::seconds(50));
  Lapic b(config(9, false), other, sink, nullptr);
  b.restore(st);
  EXPECT_EQ(b.apic_id(), 1u);
  EXPECT_EQ(b.pending_vector(), 0x55);
  EXPECT_EQ(mmio_read32(b, r::kTimerCurrent), 700u);
  EXPECT_EQ(b.save(), st);
}

}  // namespace
}  // namespace ssi::vcpu::testing
