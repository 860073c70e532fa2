// One 8259A of the PC's cascaded pair (master 0x20/0x21, slave 0xA0/0xA1),
// as far as a guest that routes its interrupts through the IOAPIC sees it:
// the ICW1-ICW4 initialisation sequence, the interrupt mask (OCW1) read
// back, OCW2 (EOI) accepted, OCW3 selecting IRR/ISR reads. ssi wires no
// line to it and LINT0 has no ExtINT path, so it never raises an interrupt;
// masking everything at boot (what every OS does) is then exactly right.
#pragma once

#include <cstdint>
#include <mutex>

#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/state_bytes.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kPicMasterPort = 0x20, kPicSlavePort = 0xA0, kPicPorts = 2;

class Pic8259 final : public IoDevice {
 public:
  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;
  // Checkpoint (docs/checkpoint.md): the guest-visible state, appended /
  // read back in a fixed order. restore() is false on short input.
  void save(StateWriter& w);
  bool restore(StateReader& r);

 private:
  std::mutex mu_;
  std::uint8_t imr_ = 0;          // reset: all unmasked (the BIOS masks what it wants)
  std::uint8_t vector_base_ = 0;  // ICW2
  unsigned icw_step_ = 0;         // 0: not initialising; 2..4: next ICW expected
  bool icw4_needed_ = false;
  bool read_isr_ = false;         // OCW3: the command port reads ISR instead of IRR
};

}  // namespace ssi::machine
