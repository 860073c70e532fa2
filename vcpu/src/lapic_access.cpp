// The guest's view of the LAPIC: xAPIC MMIO and x2APIC / APIC_BASE /
// TSC_DEADLINE MSRs (register semantics are in lapic.cpp).
#include <cstring>

#include "base/log.hpp"
#include "lapic_bits.hpp"
#include "lapic_x2apic.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {

using namespace lapic_bits;

bool Lapic::mmio_hit(std::uint64_t gpa) const {
  std::lock_guard lock(mu_);
  // x2APIC mode turns the MMIO page off. A globally disabled APIC (EN = 0)
  // still answers it, as QEMU does: a guest polling TPR reads what it wrote.
  if (x2apic_locked()) return false;
  std::uint64_t base = apic_base_ & ~0xFFFull;
  return gpa >= base && gpa < base + 0x1000;
}

void Lapic::mmio_read(std::uint64_t gpa, std::span<std::uint8_t> data) {
  std::lock_guard lock(mu_);
  std::uint32_t off = static_cast<std::uint32_t>(gpa & 0xFFF);
  std::uint32_t value = read_reg(off & ~0xFu, clock_.now());
  std::uint32_t shift = 8 * (off & 3);
  std::uint64_t v = (off & 0xC) ? 0 : (value >> shift);  // bytes 4..15 of a slot read 0
  std::memset(data.data(), 0, data.size());
  std::memcpy(data.data(), &v, std::min<std::size_t>(data.size(), 8));
}

void Lapic::mmio_write(std::uint64_t gpa, std::span<const std::uint8_t> data) {
  std::vector<Ipi> out;
  {
    std::lock_guard lock(mu_);
    std::uint32_t off = static_cast<std::uint32_t>(gpa & 0xFFF);
    if (off & 0xC) return;  // only the first dword of each 16-byte slot exists
    std::uint32_t shift = 8 * (off & 3);
    std::uint32_t value = reg(off & ~0xFu);
    std::size_t n = std::min<std::size_t>(data.size(), 4 - (off & 3));
    for (std::size_t i = 0; i < n; ++i) {  // sub-dword writes merge (guests use 32-bit)
      value &= ~(0xFFu << (shift + 8 * i));
      value |= static_cast<std::uint32_t>(data[i]) << (shift + 8 * i);
    }
    if (!write_reg(off & ~0xFu, value, out))
      log::get("vcpu")->debug("LAPIC {}: write to read-only/reserved {:#x} ignored",
                              config_.apic_id, off);
  }
  sink_and_wake(out, false);
}

std::uint8_t Lapic::cr8() const {
  std::lock_guard lock(mu_);
  return static_cast<std::uint8_t>((reg(r::kTpr) >> 4) & 0xF);
}

void Lapic::write_cr8(std::uint8_t cr8) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    reg(r::kTpr) = (cr8 & 0xFu) << 4;
    wake = pending_vector_locked().has_value();  // a lower TPR may unmask one
  }
  std::vector<Ipi> none;
  sink_and_wake(none, wake);
}

bool Lapic::handles_msr(std::uint32_t index) {
  return index == kMsrApicBase || index == kMsrTscDeadline ||
         (index >= kX2apicMsrFirst && index <= kX2apicMsrLast);
}

Result<std::uint64_t> Lapic::msr_read(std::uint32_t index) {
  std::lock_guard lock(mu_);
  if (index == kMsrApicBase) return apic_base_;
  if (index == kMsrTscDeadline) return timer_mode() == 2 ? tsc_deadline_ : 0;
  if (!x2apic_locked())  // every x2APIC MSR #GPs outside x2APIC mode
    return make_error(Errc::kInvalidArgument, "x2APIC MSR read while not in x2APIC mode");
  std::uint32_t off = (index - kX2apicMsrFirst) << 4;
  auto rule = x2apic::rule(off);
  if (!rule || !rule->read) return make_error(Errc::kInvalidArgument, "x2APIC MSR not readable");
  if (off == r::kIcrLow)
    return (static_cast<std::uint64_t>(reg(r::kIcrHigh)) << 32) | reg(r::kIcrLow);
  return read_reg(off, clock_.now());
}

Result<void> Lapic::write_apic_base(std::uint64_t value) {
  // SDM 10.12.5: reserved bits, EXTD without EN, x2APIC -> xAPIC and
  // disabled -> x2APIC are invalid (#GP). BSP is read-only here (as QEMU).
  std::uint64_t reserved = 0x2FFull | ~((1ull << features_.phys_bits) - 1);
  if (!features_.x2apic) reserved |= kBaseExtd;
  bool en = value & kBaseEnable, extd = value & kBaseExtd;
  bool was_en = apic_base_ & kBaseEnable;
  if (value & reserved) return make_error(Errc::kInvalidArgument, "APIC_BASE: reserved bit");
  if (extd && !en) return make_error(Errc::kInvalidArgument, "APIC_BASE: EXTD without EN");
  if (x2apic_locked() && en && !extd)
    return make_error(Errc::kInvalidArgument, "APIC_BASE: x2APIC -> xAPIC needs a disable");
  if (!was_en && extd)
    return make_error(Errc::kInvalidArgument, "APIC_BASE: disabled -> x2APIC needs xAPIC first");
  apic_base_ = (value & ~0xFFFull & ~reserved) | (value & (kBaseEnable | kBaseExtd)) |
               (config_.bsp ? kBaseBsp : 0);
  if (was_en && !en) {
    // Globally disabled: like a software disable (SVR.8 clear, LVTs masked);
    // the other registers keep their values (QEMU does the same).
    write_svr(reg(r::kSvr) & ~kSvrEnable);
  }
  return ok();
}

Result<void> Lapic::write_x2apic(std::uint32_t off, std::uint64_t value, std::vector<Ipi>& out) {
  auto rule = x2apic::rule(off);
  if (!rule || !rule->write) return make_error(Errc::kInvalidArgument, "x2APIC MSR not writable");
  if (off == r::kIcrLow) {
    if (value & ~x2apic::kIcrWritable)
      return make_error(Errc::kInvalidArgument, "x2APIC ICR: reserved bit");
    reg(r::kIcrHigh) = static_cast<std::uint32_t>(value >> 32);
    reg(r::kIcrLow) = static_cast<std::uint32_t>(value);
    send_icr(value, out);
    return ok();
  }
  if (value & ~static_cast<std::uint64_t>(rule->writable | rule->ignored))
    return make_error(Errc::kInvalidArgument, "x2APIC MSR: reserved bit");
  auto v = static_cast<std::uint32_t>(value & rule->writable);
  if (!write_reg(off, v, out)) return make_error(Errc::kInvalidArgument, "x2APIC MSR refused");
  return ok();
}

Result<void> Lapic::msr_write(std::uint32_t index, std::uint64_t value) {
  std::vector<Ipi> out;
  {
    std::lock_guard lock(mu_);
    if (index == kMsrApicBase) return write_apic_base(value);
    if (index == kMsrTscDeadline) {
      if (timer_mode() == 2) set_tsc_deadline(value);
      return ok();
    }
    if (!x2apic_locked())
      return make_error(Errc::kInvalidArgument, "x2APIC MSR write while not in x2APIC mode");
    SSI_TRY(write_x2apic((index - kX2apicMsrFirst) << 4, value, out));
  }
  sink_and_wake(out, false);
  return ok();
}

void Lapic::set_features(const LapicFeatures& features) {
  std::lock_guard lock(mu_);
  features_ = features;
}

std::uint64_t Lapic::apic_base() const {
  std::lock_guard lock(mu_);
  return apic_base_;
}

}  // namespace ssi::vcpu
