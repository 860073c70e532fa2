#include <random>

#include "lapic_fixture.hpp"
#include "vcpu/cpu_state.hpp"
#include "vcpu/fake_vcpu.hpp"

namespace ssi::vcpu::testing {
namespace {

// A state with every field non-trivial, from a seed (printed on failure).
CpuState sample_state(std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  auto fill = [&](auto& pod) {
    auto* b = reinterpret_cast<std::uint8_t*>(&pod);
    for (std::size_t i = 0; i < sizeof(pod); ++i) b[i] = static_cast<std::uint8_t>(rng());
  };
  CpuState s;
  fill(s.regs);
  fill(s.sregs);
  fill(s.fpu);
  fill(s.xsave);
  fill(s.xcrs);
  fill(s.events);
  fill(s.mp_state);
  fill(s.debugregs);
  for (int i = 0; i < 12; ++i) {
    kvm_msr_entry e{};
    e.index = static_cast<std::uint32_t>(rng());
    e.data = rng();
    s.msrs.push_back(e);
  }
  for (int i = 0; i < 40; ++i) {
    kvm_cpuid_entry2 e{};
    fill(e);
    s.cpuid.push_back(e);
  }
  fill(s.lapic.regs);
  s.lapic.apic_base = rng();
  s.lapic.tsc_deadline = rng();
  s.lapic.timer_remaining_ns = static_cast<std::int64_t>(rng() >> 2);
  s.lapic.apic_id = static_cast<std::uint32_t>(rng());
  s.lapic.nmi_pending = true;
  s.lapic.sipi_pending = true;
  s.lapic.sipi_vector = 0x9F;
  return s;
}

TEST(CpuStateTest, SerializeRoundTrip) {
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    CpuState s = sample_state(seed);
    auto bytes = serialize(s);
    auto back = deserialize(bytes);
    ASSERT_TRUE(back.ok()) << back.error().to_string();
    EXPECT_TRUE(*back == s);
    EXPECT_EQ(back->lapic, s.lapic);
    EXPECT_EQ(back->msrs.size(), 12u);
    EXPECT_EQ(std::memcmp(&back->xsave, &s.xsave, sizeof(s.xsave)), 0);
    EXPECT_EQ(serialize(*back), bytes);
  }
}

TEST(CpuStateTest, EmptyListsRoundTrip) {
  CpuState s;
  auto back = deserialize(serialize(s));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_TRUE(back->msrs.empty());
  EXPECT_TRUE(back->cpuid.empty());
}

TEST(CpuStateTest, TruncatedInputIsAClearError) {
  auto bytes = serialize(sample_state(7));
  for (std::size_t n : {std::size_t{0}, std::size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = deserialize(std::span(bytes).first(n));
    ASSERT_FALSE(r.ok()) << "accepted " << n << " of " << bytes.size() << " bytes";
    EXPECT_EQ(r.error().code, Errc::kProtocol);
    EXPECT_NE(r.error().message.find("CPU state"), std::string::npos);
  }
}

TEST(CpuStateTest, EveryFlippedByteIsDetected) {
  auto bytes = serialize(sample_state(11));
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    auto copy = bytes;
    std::size_t at = rng() % copy.size();
    copy[at] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    auto r = deserialize(copy);
    EXPECT_FALSE(r.ok()) << "seed 11: flip at " << at << " accepted";
  }
}

TEST(CpuStateTest, BadMagicAndVersionAreNamed) {
  auto bytes = serialize(sample_state(3));
  auto copy = bytes;
  copy[0] = 'X';
  auto r = deserialize(copy);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("magic"), std::string::npos) << r.error().message;
  copy = bytes;
  copy[8] = 99;  // version
  r = deserialize(copy);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::kVersionMismatch);
  copy = bytes;
  copy.push_back(0);  // trailing garbage: length no longer matches
  r = deserialize(copy);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("length"), std::string::npos) << r.error().message;
}

TEST(CpuStateTest, SaveAndRestoreThroughTheVcpuInterface) {
  ssi::testing::FakeClock clock;
  RecordingSink sink;
  FakeVcpu a{VcpuId{0}};
  CpuState want = sample_state(21);
  a.regs = want.regs;
  a.sregs = want.sregs;
  a.fpu = want.fpu;
  a.xsave = want.xsave;
  a.xcrs = want.xcrs;
  a.events = want.events;
  a.mp_state = want.mp_state;
  a.debugregs = want.debugregs;
  a.cpuid = want.cpuid;
  a.msrs = {{0x10, 123456}, {0xC0000082, 0xFFFFFFFF81000000}, {0x4b564d06, 1}};
  LapicConfig cfg;
  cfg.bsp = true;
  Lapic la(cfg, clock, sink, nullptr);
  mmio_write32(la, apic_reg::kSvr, 0x1FF);
  la.raise(0x42);

  auto saved = save_cpu_state(a, la);
  ASSERT_TRUE(saved.ok()) << saved.error().to_string();
  EXPECT_EQ(saved->msrs.size(), 2u) << "only the listed MSRs (no KVM PV MSR)";
  auto wire = serialize(*saved);
  auto got = deserialize(wire);
  ASSERT_TRUE(got.ok());

  FakeVcpu b{VcpuId{0}};
  Lapic lb(cfg, clock, sink, nullptr);
  ASSERT_TRUE(restore_cpu_state(b, lb, *got).ok());
  EXPECT_EQ(std::memcmp(&b.regs, &want.regs, sizeof(want.regs)), 0);
  EXPECT_EQ(std::memcmp(&b.sregs, &want.sregs, sizeof(want.sregs)), 0);
  EXPECT_EQ(std::memcmp(&b.xsave, &want.xsave, sizeof(want.xsave)), 0);
  EXPECT_EQ(std::memcmp(&b.events, &want.events, sizeof(want.events)), 0);
  EXPECT_EQ(b.msrs.at(0xC0000082), 0xFFFFFFFF81000000u);
  EXPECT_EQ(b.cpuid.size(), want.cpuid.size());
  EXPECT_EQ(lb.pending_vector(), 0x42);
  EXPECT_EQ(lb.save(), la.save());
}

TEST(CpuStateTest, RestoreReportsTheMsrKvmRefuses) {
  ssi::testing::FakeClock clock;
  RecordingSink sink;
  FakeVcpu b{VcpuId{0}};
  b.refuse_msr = 0x10;
  CpuState s;
  s.msrs = {{0x10, 0, 5}};  // index, reserved, data
  Lapic l(LapicConfig{}, clock, sink, nullptr);
  auto r = restore_cpu_state(b, l, s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("0x10"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace ssi::vcpu::testing
