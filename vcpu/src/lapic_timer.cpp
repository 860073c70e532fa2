// LAPIC timer: one-shot, periodic (count x divide at bus_hz) and TSC
// deadline, on an injectable Clock; plus save/restore of the whole LAPIC.
#include "base/log.hpp"
#include "lapic_bits.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {
namespace {

using namespace lapic_bits;
using u128 = unsigned __int128;  // count * divide * 1e9 overflows 64 bits

std::uint64_t divisor(std::uint32_t dcr) {
  // DCR bits 0,1,3: 0b000 -> 2 ... 0b110 -> 128, 0b111 -> 1 (SDM 10.5.4).
  std::uint32_t v = (dcr & 3) | ((dcr >> 1) & 4);
  return v == 7 ? 1 : (2ull << v);
}

}  // namespace

unsigned Lapic::timer_mode() const { return (reg(r::kLvtTimer) >> 17) & 3; }

Clock::duration Lapic::timer_period() const {
  u128 ticks = static_cast<u128>(reg(r::kTimerInitial)) * divisor(reg(r::kTimerDivide));
  return Clock::duration{static_cast<Clock::duration::rep>(ticks * 1'000'000'000 / config_.bus_hz)};
}

void Lapic::start_count(Clock::time_point now) {
  if (reg(r::kTimerInitial) == 0) {
    timer_deadline_.reset();  // writing 0 stops the timer
  } else {
    timer_deadline_ = now + timer_period();
  }
  publish_timer();
}

void Lapic::set_tsc_deadline(std::uint64_t tsc) {
  tsc_deadline_ = tsc;
  if (tsc == 0) {
    timer_deadline_.reset();
  } else {
    const TscModel& m = config_.tsc;
    // A deadline already in the past fires at the next update_timer().
    std::uint64_t ahead = tsc > m.tsc_at_epoch ? tsc - m.tsc_at_epoch : 0;
    auto ns = static_cast<Clock::duration::rep>(static_cast<u128>(ahead) * 1'000'000'000 /
                                                m.tsc_hz);
    timer_deadline_ = m.epoch + Clock::duration{ns};
    log::get("vcpu")->trace("LAPIC {}: TSC deadline {:#x}, {} ns after the model's epoch "
                            "(TSC {:#x} at it, {} Hz), {} ns from now",
                            config_.apic_id, tsc, ns, m.tsc_at_epoch, m.tsc_hz,
                            (*timer_deadline_ - clock_.now()).count());
  }
  publish_timer();
}

std::uint32_t Lapic::current_count(Clock::time_point now) const {
  if (timer_mode() == 2 || !timer_deadline_) return 0;
  auto deadline = *timer_deadline_;
  if (now >= deadline) {
    // A periodic count reloads at once (SDM 10.5.4), even if update_timer()
    // has not run yet for this period: the count is where the next one is.
    auto period = timer_period();
    if (timer_mode() != 1 || period.count() <= 0) return 0;
    deadline += period * ((now - deadline) / period + 1);
  }
  u128 left_ns = static_cast<u128>((deadline - now).count());
  u128 ticks = (left_ns * config_.bus_hz + 999'999'999) / 1'000'000'000;
  u128 count = (ticks + divisor(reg(r::kTimerDivide)) - 1) / divisor(reg(r::kTimerDivide));
  return static_cast<std::uint32_t>(std::min<u128>(count, reg(r::kTimerInitial)));
}

void Lapic::publish_timer() {
  if (timers_) timers_->schedule(config_.vcpu, timer_deadline_);
}

void Lapic::update_timer(Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (!timer_deadline_ || now < *timer_deadline_) return;
  std::uint32_t lvt = reg(r::kLvtTimer);
  auto vector = static_cast<std::uint8_t>(lvt & 0xFF);
  if (!(lvt & kLvtMasked) && vector >= 16) {
    reg(r::kIrr + 0x10 * (vector / 32)) |= 1u << (vector % 32);
  }
  log::get("vcpu")->trace("LAPIC {}: timer fired (LVT {:#x}), {} ns late", config_.apic_id, lvt,
                          (now - *timer_deadline_).count());
  if (timer_mode() == 1 && timer_period().count() > 0) {
    // Periodic: next edge after now; missed periods coalesce into this one
    // interrupt, as they would while the IRR bit is still set.
    auto period = timer_period();
    auto late = now - *timer_deadline_;
    *timer_deadline_ += period * (late / period + 1);
  } else {
    timer_deadline_.reset();
    if (timer_mode() == 2) tsc_deadline_ = 0;  // reads back 0 once fired
  }
  publish_timer();
}

void Lapic::set_tsc_model(const TscModel& tsc) {
  std::lock_guard lock(mu_);
  config_.tsc = tsc;
}

std::optional<Clock::time_point> Lapic::timer_deadline() const {
  std::lock_guard lock(mu_);
  return timer_deadline_;
}

LapicState Lapic::save() const {
  std::lock_guard lock(mu_);
  LapicState s;
  s.regs = regs_;
  s.apic_base = apic_base_;
  s.tsc_deadline = tsc_deadline_;
  if (timer_deadline_) {
    auto left = *timer_deadline_ - clock_.now();
    s.timer_remaining_ns = std::max<std::int64_t>(0, left.count());
  }
  s.apic_id = config_.apic_id;
  s.nmi_pending = nmi_pending_;
  s.wait_for_sipi = wait_for_sipi_;
  s.init_pending = init_pending_;
  s.sipi_pending = sipi_pending_;
  s.sipi_vector = sipi_vector_;
  return s;
}

void Lapic::restore(const LapicState& s) {
  std::lock_guard lock(mu_);
  regs_ = s.regs;
  apic_base_ = s.apic_base;
  tsc_deadline_ = s.tsc_deadline;
  if (s.timer_remaining_ns >= 0)
    timer_deadline_ = clock_.now() + Clock::duration{s.timer_remaining_ns};
  else
    timer_deadline_.reset();
  config_.apic_id = s.apic_id;
  nmi_pending_ = s.nmi_pending;
  wait_for_sipi_ = s.wait_for_sipi;
  init_pending_ = s.init_pending;
  sipi_pending_ = s.sipi_pending;
  sipi_vector_ = s.sipi_vector;
  publish_timer();
}

}  // namespace ssi::vcpu
