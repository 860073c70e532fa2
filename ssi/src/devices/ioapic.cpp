#include "ssi/devices/ioapic.hpp"

namespace ssi::machine {

namespace {
constexpr std::uint64_t kIoRegSel = 0x00, kIoWin = 0x10, kEoiReg = 0x40;
constexpr std::uint32_t kRegId = 0, kRegVersion = 1, kRegArbitration = 2, kRegRedir = 0x10;
// Bits software writes in an entry's low half (vector, delivery mode,
// destination mode, polarity, trigger mode, mask); delivery status and
// remote IRR are read-only.
constexpr std::uint64_t kLowWritable = 0x1ABFF;
}  // namespace

void Ioapic::reset() {
  for (auto& e : redir_) e = kMasked;  // every pin masked at reset
  line_.fill(false);
  edge_pending_.fill(false);
}

void Ioapic::set_id(std::uint8_t id) {
  std::lock_guard lock(mu_);
  id_ = id & 0xF;
}

void Ioapic::send(std::vector<vcpu::Ipi>& out) {
  if (sink_)
    for (const auto& ipi : out) sink_->send_ipi(ipi);
}

void Ioapic::service(unsigned pin, std::vector<vcpu::Ipi>& out) {
  std::uint64_t& e = redir_[pin];
  if (e & kMasked) return;
  if (e & kLevel) {
    if (!line_[pin] || (e & kRemoteIrr)) return;
    e |= kRemoteIrr;  // until the EOI of this vector
  } else {
    if (!edge_pending_[pin]) return;
    edge_pending_[pin] = false;
  }
  vcpu::Ipi ipi;
  ipi.source_apic_id = 0xFFFFFFFF;  // not a LAPIC: no "self" to exclude
  ipi.vector = static_cast<std::uint8_t>(e & 0xFF);
  auto mode = static_cast<vcpu::DeliveryMode>((e >> 8) & 7);
  // Lowest priority goes to the targets like fixed (the router picks them).
  ipi.mode = mode == vcpu::DeliveryMode::kLowestPriority ? vcpu::DeliveryMode::kFixed : mode;
  ipi.logical = (e & kLogical) != 0;
  ipi.level_triggered = (e & kLevel) != 0;
  ipi.destination = static_cast<std::uint32_t>(e >> 56);
  out.push_back(ipi);
}

void Ioapic::set_line(unsigned pin, bool high) {
  if (pin >= kPins) return;
  std::vector<vcpu::Ipi> out;
  {
    std::lock_guard lock(mu_);
    if (high && !line_[pin]) edge_pending_[pin] = true;
    line_[pin] = high;
    if (!high) edge_pending_[pin] = false;  // an edge not yet delivered needs the line still up
    service(pin, out);
  }
  send(out);
}

void Ioapic::eoi(std::uint8_t vector) {
  std::vector<vcpu::Ipi> out;
  {
    std::lock_guard lock(mu_);
    eoi_locked(vector, out);
  }
  send(out);
}

void Ioapic::eoi_locked(std::uint8_t vector, std::vector<vcpu::Ipi>& out) {
  for (unsigned pin = 0; pin < kPins; ++pin) {
    if ((redir_[pin] & 0xFF) != vector || !(redir_[pin] & kRemoteIrr)) continue;
    redir_[pin] &= ~kRemoteIrr;
    service(pin, out);  // still asserted: deliver again
  }
}

std::uint32_t Ioapic::read_register(std::uint32_t index) const {
  if (index == kRegId || index == kRegArbitration) return static_cast<std::uint32_t>(id_) << 24;
  if (index == kRegVersion) return kVersion;
  if (index >= kRegRedir && index < kRegRedir + 2 * kPins) {
    std::uint64_t e = redir_[(index - kRegRedir) / 2];
    return static_cast<std::uint32_t>(index & 1 ? e >> 32 : e);
  }
  return 0xFFFFFFFF;  // no such register
}

void Ioapic::write_register(std::uint32_t index, std::uint32_t value,
                            std::vector<vcpu::Ipi>& out) {
  if (index == kRegId) {
    id_ = (value >> 24) & 0xF;
    return;
  }
  if (index < kRegRedir || index >= kRegRedir + 2 * kPins) return;  // read-only or none
  unsigned pin = (index - kRegRedir) / 2;
  std::uint64_t& e = redir_[pin];
  if (index & 1) {
    e = (e & 0x00000000FFFFFFFFull) | (static_cast<std::uint64_t>(value & 0xFF000000u) << 32);
  } else {
    e = (e & ~kLowWritable) | (value & kLowWritable);
    if (!(e & kLevel)) e &= ~kRemoteIrr;  // remote IRR means nothing for edge pins
  }
  service(pin, out);  // unmasked with the line up (level) or an edge waiting
}

void Ioapic::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  std::lock_guard lock(mu_);
  std::uint64_t v = 0xFFFFFFFFFFFFFFFFull;
  if (offset == kIoRegSel) v = select_;
  if (offset == kIoWin) v = read_register(select_);
  set_io_value(data, v);
}

void Ioapic::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  std::vector<vcpu::Ipi> out;
  {
    std::lock_guard lock(mu_);
    auto v = static_cast<std::uint32_t>(io_value(data));
    if (offset == kIoRegSel) select_ = v & 0xFF;
    if (offset == kIoWin) write_register(select_, v, out);
    if (offset == kEoiReg) eoi_locked(static_cast<std::uint8_t>(v), out);  // version 0x20
  }
  send(out);
}

}  // namespace ssi::machine

namespace ssi::machine {

void Ioapic::save(StateWriter& w) {
  std::lock_guard lock(mu_);
  w.pod(id_);
  w.pod(select_);
  for (unsigned i = 0; i < kPins; ++i) {
    w.pod(redir_[i]);  // remote IRR and delivery status included
    w.pod(static_cast<std::uint8_t>(edge_pending_[i]));
    w.pod(static_cast<std::uint8_t>(line_[i]));
  }
}

bool Ioapic::restore(StateReader& r) {
  std::lock_guard lock(mu_);
  id_ = r.pod<std::uint8_t>();
  select_ = r.pod<std::uint32_t>();
  for (unsigned i = 0; i < kPins; ++i) {
    redir_[i] = r.pod<std::uint64_t>();
    edge_pending_[i] = r.pod<std::uint8_t>() != 0;
    line_[i] = r.pod<std::uint8_t>() != 0;
  }
  return !r.failed();
}

}  // namespace ssi::machine
