// The guest's view of the LAPIC: xAPIC MMIO and x2APIC / APIC_BASE /
// TSC_DEADLINE MSRs (register semantics are in lapic.cpp).
#include <cstring>

#include "base/log.hpp"
#include "lapic_bits.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {

using namespace lapic_bits;

bool Lapic::mmio_hit(std::uint64_t gpa) const {
  std::lock_guard lock(mu_);
  if (!(apic_base_ & kBaseEnable) || x2apic_locked()) return false;
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

bool Lapic::handles_msr(std::uint32_t index) {
  return index == kMsrApicBase || index == kMsrTscDeadline ||
         (index >= kX2apicMsrFirst && index <= kX2apicMsrLast);
}

Result<std::uint64_t> Lapic::msr_read(std::uint32_t index) {
  std::lock_guard lock(mu_);
  if (index == kMsrApicBase) return apic_base_;
  if (index == kMsrTscDeadline) return timer_mode() == 2 ? tsc_deadline_ : 0;
  if (!x2apic_locked())
    return make_error(Errc::kInvalidArgument, "x2APIC MSR read while not in x2APIC mode");
  std::uint32_t off = (index - kX2apicMsrFirst) << 4;
  if (off == r::kIcrLow) return (static_cast<std::uint64_t>(reg(r::kIcrHigh)) << 32) |
                                reg(r::kIcrLow);
  if (off == r::kEoi || off == r::kSelfIpi || off == r::kDfr || off == r::kIcrHigh ||
      off == r::kApr || off == 0xC0 || off < r::kId)
    return make_error(Errc::kInvalidArgument, "x2APIC MSR not readable");
  return read_reg(off, clock_.now());
}

Result<void> Lapic::msr_write(std::uint32_t index, std::uint64_t value) {
  std::vector<Ipi> out;
  {
    std::lock_guard lock(mu_);
    if (index == kMsrApicBase) {
      bool en = value & kBaseEnable, extd = value & kBaseExtd;
      if (extd && !en) return make_error(Errc::kInvalidArgument, "APIC_BASE: EXTD without EN");
      if (x2apic_locked() && en && !extd)
        return make_error(Errc::kInvalidArgument, "APIC_BASE: x2APIC -> xAPIC needs a disable");
      apic_base_ = (value & 0x000FFFFFFFFFF000ull) | (value & (kBaseEnable | kBaseExtd)) |
                   (config_.bsp ? kBaseBsp : 0);
      return ok();
    }
    if (index == kMsrTscDeadline) {
      if (timer_mode() == 2) set_tsc_deadline(value);
      return ok();
    }
    if (!x2apic_locked())
      return make_error(Errc::kInvalidArgument, "x2APIC MSR write while not in x2APIC mode");
    std::uint32_t off = (index - kX2apicMsrFirst) << 4;
    if (off == r::kIcrLow) {
      reg(r::kIcrHigh) = static_cast<std::uint32_t>(value >> 32);
      reg(r::kIcrLow) = static_cast<std::uint32_t>(value) & ~(1u << 12);
      send_icr(value, out);
    } else if (off == r::kEoi && value != 0) {
      return make_error(Errc::kInvalidArgument, "x2APIC EOI with a non-zero value");
    } else if ((value >> 32) != 0 ||
               !write_reg(off, static_cast<std::uint32_t>(value), out)) {
      return make_error(Errc::kInvalidArgument, "x2APIC MSR not writable");
    }
  }
  sink_and_wake(out, false);
  return ok();
}

}  // namespace ssi::vcpu
