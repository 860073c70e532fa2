// Level-triggered interrupts across nodes: node 0's IOAPIC delivers COM1's
// level interrupt to vCPU 1 on node 1; that LAPIC's EOI travels to node 0
// and clears the entry's remote IRR, and an EOI while the line is still
// high makes the IOAPIC deliver again.
#include <gtest/gtest.h>

#include "in_process_machine.hpp"
#include "ssi/devices/ioapic.hpp"

namespace ssi::multinode::testing {
namespace {

using namespace std::chrono_literals;
using machine::Ioapic;
constexpr std::uint64_t kMem = 8ull << 20;
constexpr std::uint8_t kVector = 0x50;
constexpr std::uint32_t kCom1Pin = 4;

std::vector<std::uint8_t> le32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}

void start_cpu1_then_sleep(vcpu::testing::FakeVcpu& v) {
  v.push_mmio_write(0xFEE00310, {0, 0, 0, 1}, false)
      .push_mmio_write(0xFEE00300, {0x00, 0x45, 0, 0}, false)
      .push_mmio_write(0xFEE00300, {0x08, 0x46, 0, 0}, false)
      .push_simple(vcpu::ExitKind::kHlt, false);
}

// vCPU 1: route COM1's pin (level, vector 0x50) to itself, raise the line
// (THRE interrupt), take the interrupt. `ack_first`: read IIR (line low)
// before the EOI; else EOI with the line high, take the redelivery, then
// ack and EOI. Reads the entry (low dword) after each step, then exits.
void level_interrupt_on_cpu1(vcpu::testing::FakeVcpu& v, bool ack_first) {
  auto ioapic = [&v](std::uint32_t index, std::uint32_t value) {
    v.push_mmio_write(machine::kIoapicBase, le32(index), false)
        .push_mmio_write(machine::kIoapicBase + 0x10, le32(value), false);
  };
  auto read_entry = [&v] {
    v.push_mmio_write(machine::kIoapicBase, le32(0x10 + 2 * kCom1Pin), false)
        .push_mmio_read(machine::kIoapicBase + 0x10, 4, false);
  };
  v.push_mmio_write(0xFEE000F0, le32(0x1FF), false);  // SVR: enable the LAPIC
  ioapic(0x11 + 2 * kCom1Pin, 1u << 24);               // destination: APIC id 1
  ioapic(0x10 + 2 * kCom1Pin, static_cast<std::uint32_t>(Ioapic::kLevel) | kVector);
  v.push_io_out(0x3F9, {0x02}, false);  // IER: THR-empty interrupt: the line goes high
  v.push_simple(vcpu::ExitKind::kHlt, true);  // sti; hlt: takes 0x50
  read_entry();                               // [0] remote IRR set
  if (ack_first) {
    v.push_io_in(0x3FA, 1, false);           // [1] IIR: acknowledges, the line goes low
    v.push_mmio_write(0xFEE000B0, le32(0), false);  // EOI
    read_entry();                                   // [2] remote IRR clear
  } else {
    v.push_mmio_write(0xFEE000B0, le32(0), false);  // EOI, line still high
    v.push_simple(vcpu::ExitKind::kHlt, true);      // takes 0x50 again
    read_entry();                                   // [1] remote IRR set again
    v.push_io_in(0x3FA, 1, false);                  // [2] IIR
    v.push_mmio_write(0xFEE000B0, le32(0), false);
    read_entry();                                   // [3] remote IRR clear
  }
  v.push_io_out(0xF8, {0}, false).push_simple(vcpu::ExitKind::kHlt, false);
}

std::uint32_t entry_of(const vcpu::testing::CompletedRead& r) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4 && i < r.data.size(); ++i) v |= std::uint32_t{r.data[i]} << (8 * i);
  return v;
}

class RemoteEoiTest : public ::testing::TestWithParam<bool> {};

TEST_P(RemoteEoiTest, LevelEoiFromAnotherNodeClearsRemoteIrr) {
  const bool ack_first = GetParam();
  InProcessMachine m(2, 2, kMem, [ack_first](vcpu::testing::FakeVcpu& v, std::span<std::uint8_t>) {
    if (v.id().value() == 0) return start_cpu1_then_sleep(v);
    level_interrupt_on_cpu1(v, ack_first);
  });
  ASSERT_TRUE(m.status().ok()) << m.status().error().to_string();
  m.start();
  auto results = m.wait(10s);
  for (std::uint32_t n = 0; n < 2; ++n) {
    ASSERT_TRUE(results[n].ok()) << "node " << n << ": " << results[n].error().to_string();
    EXPECT_EQ(*results[n], 0) << "node " << n;
  }
  auto* cpu1 = m.vm(1).vcpus()[0];
  auto reads = cpu1->completed_reads();
  std::vector<std::uint32_t> entries;
  for (const auto& r : reads)
    if (r.address == machine::kIoapicBase + 0x10) entries.push_back(entry_of(r));
  if (ack_first) {
    EXPECT_EQ(cpu1->injected(), std::vector<std::uint8_t>{kVector});
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_TRUE(entries[0] & Ioapic::kRemoteIrr) << "delivered: remote IRR set";
    EXPECT_FALSE(entries[1] & Ioapic::kRemoteIrr) << "the EOI from node 1 cleared it";
  } else {
    EXPECT_EQ(cpu1->injected(), (std::vector<std::uint8_t>{kVector, kVector}))
        << "an EOI with the line high delivers again";
    ASSERT_EQ(entries.size(), 3u);
    EXPECT_TRUE(entries[0] & Ioapic::kRemoteIrr);
    EXPECT_TRUE(entries[1] & Ioapic::kRemoteIrr);
    EXPECT_FALSE(entries[2] & Ioapic::kRemoteIrr);
  }
  std::uint64_t eois = 0;
  for (const auto& [name, value] : m.machine(0).stats())
    if (name == "eois_from_peers") eois = value;
  EXPECT_EQ(eois, ack_first ? 1u : 2u);
}

INSTANTIATE_TEST_SUITE_P(Line, RemoteEoiTest, ::testing::Values(true, false),
                         [](const auto& info) {
                           return std::string(info.param ? "AckedBeforeEoi" : "StillHighAtEoi");
                         });

}  // namespace
}  // namespace ssi::multinode::testing
