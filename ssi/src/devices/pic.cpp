#include "ssi/devices/pic.hpp"

namespace ssi::machine {

void Pic8259::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  std::lock_guard lock(mu_);
  // Data port: IMR. Command port: IRR or ISR, both empty (no line is wired).
  std::uint8_t v = offset == 1 ? imr_ : 0;
  for (auto& b : data) b = v;
}

void Pic8259::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  std::lock_guard lock(mu_);
  if (data.empty()) return;
  std::uint8_t v = data[0];
  if (offset == 0) {
    if (v & 0x10) {  // ICW1: start initialisation, IMR cleared
      icw_step_ = 2;
      icw4_needed_ = v & 1;
      imr_ = 0;
    } else if ((v & 0x18) == 0x08 && (v & 2)) {  // OCW3 with RR
      read_isr_ = v & 1;
    }  // OCW2 (EOI, rotation): nothing is ever in service
    return;
  }
  switch (icw_step_) {
    case 2: vector_base_ = v & 0xF8; icw_step_ = 3; return;  // ICW2
    case 3: icw_step_ = icw4_needed_ ? 4 : 0; return;          // ICW3: cascade wiring
    case 4: icw_step_ = 0; return;                             // ICW4: 8086 mode, AEOI
    default: imr_ = v; return;                                 // OCW1: mask
  }
}

}  // namespace ssi::machine

namespace ssi::machine {

void Pic8259::save(StateWriter& w) {
  std::lock_guard lock(mu_);
  w.pod(imr_);
  w.pod(vector_base_);
  w.pod(static_cast<std::uint32_t>(icw_step_));
  w.pod(static_cast<std::uint8_t>(icw4_needed_));
  w.pod(static_cast<std::uint8_t>(read_isr_));
}

bool Pic8259::restore(StateReader& r) {
  std::lock_guard lock(mu_);
  imr_ = r.pod<std::uint8_t>();
  vector_base_ = r.pod<std::uint8_t>();
  icw_step_ = r.pod<std::uint32_t>();
  icw4_needed_ = r.pod<std::uint8_t>() != 0;
  read_isr_ = r.pod<std::uint8_t>() != 0;
  return !r.failed() && icw_step_ <= 4;
}

}  // namespace ssi::machine
