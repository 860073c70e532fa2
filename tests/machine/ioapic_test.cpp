// IOAPIC, 8259 and the 16550's interrupt line, without KVM: what reaches the
// IpiSink for each programming a guest does.
#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "ssi/devices/ioapic.hpp"
#include "ssi/devices/pic.hpp"
#include "ssi/devices/serial.hpp"

namespace ssi::machine {
namespace {

class Recorder final : public vcpu::IpiSink {
 public:
  void send_ipi(const vcpu::Ipi& ipi) override { ipis.push_back(ipi); }
  std::vector<vcpu::Ipi> take() { return std::exchange(ipis, {}); }
  std::vector<vcpu::Ipi> ipis;
};

struct IoapicTest : ::testing::Test {
  IoapicTest() { io.set_sink(&sink); }
  void put(std::uint64_t off, std::uint32_t v) {
    std::uint8_t b[4];
    set_io_value(b, v);
    io.write(off, b);
  }
  std::uint32_t reg(std::uint32_t index) {
    put(0, index);
    std::uint8_t b[4];
    io.read(0x10, b);
    return static_cast<std::uint32_t>(io_value(b));
  }
  void set_reg(std::uint32_t index, std::uint32_t v) {
    put(0, index);
    put(0x10, v);
  }
  void route(unsigned pin, std::uint32_t low, std::uint8_t dest) {
    set_reg(0x11 + 2 * pin, static_cast<std::uint32_t>(dest) << 24);
    set_reg(0x10 + 2 * pin, low);
  }
  Recorder sink;
  Ioapic io{3};
};

TEST_F(IoapicTest, IdVersionAndMaskedEntriesAtReset) {
  EXPECT_EQ(reg(0), 3u << 24);
  EXPECT_EQ(reg(1), 0x00170020u) << "24 entries, version 0x20";
  for (std::uint32_t pin = 0; pin < 24; ++pin) EXPECT_EQ(reg(0x10 + 2 * pin), 1u << 16);
  set_reg(0, 0x0A000000);
  EXPECT_EQ(reg(0), 0x0A000000u) << "the ID is writable";
  EXPECT_EQ(reg(0x40), 0xFFFFFFFFu) << "no register 0x40";
}

TEST_F(IoapicTest, EdgePinDeliversOnceperRisingEdgeToItsDestination) {
  route(4, 0x0830, 0x06);  // vector 0x30, logical, edge, unmasked
  io.set_line(4, true);
  io.set_line(4, true);  // no new edge
  auto got = sink.take();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].vector, 0x30);
  EXPECT_TRUE(got[0].logical);
  EXPECT_EQ(got[0].destination, 0x06u);
  EXPECT_FALSE(got[0].level_triggered);
  io.set_line(4, false);
  io.set_line(4, true);
  EXPECT_EQ(sink.take().size(), 1u);
}

TEST_F(IoapicTest, MaskedPinDeliversNothing) {
  route(4, 0x10030, 0);
  io.set_line(4, true);
  EXPECT_TRUE(sink.take().empty());
}

TEST_F(IoapicTest, LevelPinHoldsRemoteIrrUntilEoiAndRedeliversWhileAsserted) {
  route(9, 0x8041, 1);  // vector 0x41, physical dest 1, level
  io.set_line(9, true);
  ASSERT_EQ(sink.take().size(), 1u);
  EXPECT_TRUE(reg(0x10 + 18) & Ioapic::kRemoteIrr);
  io.set_line(9, true);
  EXPECT_TRUE(sink.take().empty()) << "remote IRR blocks a second delivery";
  io.eoi(0x41);  // LAPIC EOI broadcast, line still high
  auto again = sink.take();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(again[0].level_triggered);
  io.set_line(9, false);
  put(0x40, 0x41);  // the EOI register (version 0x20)
  EXPECT_FALSE(reg(0x10 + 18) & Ioapic::kRemoteIrr);
  EXPECT_TRUE(sink.take().empty()) << "line low: nothing more";
}

TEST_F(IoapicTest, ReadOnlyBitsOfAnEntryIgnoreWrites) {
  set_reg(0x10, 0xFFFFFFFF);
  EXPECT_EQ(reg(0x10) & (Ioapic::kRemoteIrr | Ioapic::kDeliveryStatus), 0u);
  set_reg(0x11, 0xFFFFFFFF);
  EXPECT_EQ(reg(0x11), 0xFF000000u) << "destination only";
}

TEST(PicTest, InitialisationAndMaskReadBack) {
  Pic8259 pic;
  auto out = [&](std::uint64_t off, std::uint8_t v) { pic.write(off, {&v, 1}); };
  auto in = [&](std::uint64_t off) {
    std::uint8_t v = 0;
    pic.read(off, {&v, 1});
    return v;
  };
  out(0, 0x11);  // ICW1, ICW4 follows
  out(1, 0x20);  // ICW2: vectors 0x20..
  out(1, 0x04);  // ICW3
  out(1, 0x01);  // ICW4
  EXPECT_EQ(in(1), 0x00) << "ICW1 clears the mask";
  out(1, 0xA5);
  EXPECT_EQ(in(1), 0xA5);
  out(0, 0x0B);  // OCW3: read ISR
  EXPECT_EQ(in(0), 0x00);
}

TEST(SerialIrqTest, ThreInterruptRaisesUntilIirReadAndPulsesOnEachWrite) {
  std::vector<bool> edges;
  Serial16550 uart([](char) {});
  uart.set_irq([&](bool high) { edges.push_back(high); });
  auto out = [&](std::uint64_t off, std::uint8_t v) { uart.write(off, {&v, 1}); };
  auto in = [&](std::uint64_t off) {
    std::uint8_t v = 0;
    uart.read(off, {&v, 1});
    return v;
  };
  out(1, 0x02);  // IER: THRE interrupt
  EXPECT_EQ(edges, std::vector<bool>{true});
  EXPECT_EQ(in(2) & 0x0F, 0x02) << "IIR: THRE";
  EXPECT_EQ(edges, (std::vector<bool>{true, false})) << "IIR read acknowledges";
  EXPECT_EQ(in(2) & 0x0F, 0x01) << "nothing pending";
  out(0, 'x');
  EXPECT_EQ(edges, (std::vector<bool>{true, false, true}));
  out(1, 0x00);
  EXPECT_EQ(edges.back(), false) << "IER cleared: line low";
}

}  // namespace
}  // namespace ssi::machine
