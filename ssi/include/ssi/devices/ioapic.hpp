// I/O APIC (82093AA programming model, version 0x20 as QEMU's default): at
// 0xFEC00000, IOREGSEL (0x00) / IOWIN (0x10) / EOI (0x40); registers ID,
// version (24 entries), arbitration and 24 64-bit redirection entries. Input
// pin n is ISA IRQ n (the MADT's only override is IRQ0 -> GSI 2). An entry
// becomes an Ipi for the machine's IpiSink, so its physical or logical
// destination reaches LAPICs on any node. Edge pins deliver on a rising
// edge; level pins set remote IRR and deliver again after the EOI of their
// vector (LAPIC EOI broadcast or the EOI register) while still asserted.
// Thread-safe; the sink is called without the lock held.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <vector>

#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/state_bytes.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kIoapicBase = 0xFEC00000;
inline constexpr std::uint64_t kIoapicSize = 0x1000;

class Ioapic final : public IoDevice {
 public:
  static constexpr unsigned kPins = 24;
  static constexpr std::uint32_t kVersion = 0x20 | ((kPins - 1) << 16);

  explicit Ioapic(std::uint8_t id = 0) : id_(id) { reset(); }
  // The machine's interrupt router; set before any vCPU runs.
  void set_sink(vcpu::IpiSink* sink) { sink_ = sink; }
  void set_id(std::uint8_t id);

  // A device drives input pin `pin` (ISA IRQ number) high or low.
  void set_line(unsigned pin, bool high);
  // A LAPIC took the EOI of level-triggered `vector`.
  void eoi(std::uint8_t vector);

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Checkpoint (docs/checkpoint.md): the guest-visible state, appended /
  // read back in a fixed order. restore() is false on short input.
  void save(StateWriter& w);
  bool restore(StateReader& r);
  // Line levels are saved here too (a device's restore sets its own side
  // without a new edge).

  // Redirection-entry bits (also for tests).
  static constexpr std::uint64_t kMasked = 1u << 16, kLevel = 1u << 15, kRemoteIrr = 1u << 14,
                                 kDeliveryStatus = 1u << 12, kLogical = 1u << 11;

 private:
  void reset();
  std::uint32_t read_register(std::uint32_t index) const;
  void write_register(std::uint32_t index, std::uint32_t value, std::vector<vcpu::Ipi>& out);
  void service(unsigned pin, std::vector<vcpu::Ipi>& out);  // deliver if it should
  void eoi_locked(std::uint8_t vector, std::vector<vcpu::Ipi>& out);
  void send(std::vector<vcpu::Ipi>& out);

  vcpu::IpiSink* sink_ = nullptr;
  mutable std::mutex mu_;
  std::uint8_t id_;
  std::uint32_t select_ = 0;
  std::array<std::uint64_t, kPins> redir_{};
  std::array<bool, kPins> line_{};
  std::array<bool, kPins> edge_pending_{};  // an edge arrived; delivered once unmasked
};

}  // namespace ssi::machine
