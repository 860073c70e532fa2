// Userspace LAPIC: registers, ICR -> IPIs, interrupt acceptance and
// priority. Guest access paths: lapic_access.cpp; timer: lapic_timer.cpp.
#include <bit>
#include <cstring>
#include <utility>

#include "base/log.hpp"
#include "lapic_bits.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {
namespace {

using namespace lapic_bits;

// 256-bit ISR/TMR/IRR: vector v lives in register base + 0x10 * (v / 32), bit v % 32.
std::uint32_t vec_reg(std::uint32_t base, std::uint8_t v) { return base + 0x10 * (v / 32); }
std::uint32_t vec_bit(std::uint8_t v) { return 1u << (v % 32); }

}  // namespace

bool ipi_targets(const Ipi& ipi, std::uint32_t apic_id, std::uint32_t ldr, bool x2apic,
                 bool cluster) {
  bool self = ipi.source_apic_id == apic_id;
  switch (ipi.shorthand) {
    case DestShorthand::kSelf: return self;
    case DestShorthand::kAllIncludingSelf: return true;
    case DestShorthand::kAllExcludingSelf: return !self;
    case DestShorthand::kNone: break;
  }
  if (x2apic) {
    if (ipi.destination == 0xFFFFFFFFu) return true;
    if (!ipi.logical) return ipi.destination == apic_id;
    // cluster in bits 31:16, member bitmap in 15:0
    return (ipi.destination >> 16) == (ldr >> 16) && (ipi.destination & ldr & 0xFFFF) != 0;
  }
  std::uint32_t dest = ipi.destination & 0xFF, mine = ldr >> 24;
  if (!ipi.logical) return dest == 0xFF || dest == apic_id;
  if (!cluster) return (dest & mine) != 0;  // flat: 8-bit member mask
  // cluster model: cluster in bits 7:4 (15 = every cluster), members in 3:0
  bool cluster_hit = (dest >> 4) == 0xF || (dest >> 4) == (mine >> 4);
  return cluster_hit && (dest & mine & 0xF) != 0;
}

Lapic::Lapic(LapicConfig config, const Clock& clock, IpiSink& sink, TimerScheduler* timers)
    : config_(config), clock_(clock), sink_(sink), timers_(timers) {
  apic_base_ = kLapicDefaultBase | kBaseEnable | (config_.bsp ? kBaseBsp : 0);
  reset_registers();
  wait_for_sipi_ = !config_.bsp;
}

void Lapic::reset_registers() {
  regs_.fill(0);
  reg(r::kId) = config_.apic_id << 24;
  reg(r::kVersion) = kVersion;
  reg(r::kDfr) = 0xFFFFFFFF;
  reg(r::kSvr) = 0xFF;
  for (auto lvt : {r::kLvtCmci, r::kLvtTimer, r::kLvtThermal, r::kLvtPerf, r::kLvtLint0,
                   r::kLvtLint1, r::kLvtError})
    reg(lvt) = kLvtMasked;
  timer_deadline_.reset();
  tsc_deadline_ = 0;
  nmi_pending_ = false;
  publish_timer();
}

void Lapic::set_wakeup(std::function<void()> wakeup) {
  std::lock_guard lock(mu_);
  wakeup_ = std::move(wakeup);
}

bool Lapic::x2apic_locked() const {
  return (apic_base_ & (kBaseEnable | kBaseExtd)) == (kBaseEnable | kBaseExtd);
}

std::uint32_t Lapic::ldr_locked() const {
  if (x2apic_locked()) {  // derived from the id, read-only (SDM 10.12.10.2)
    std::uint32_t id = config_.apic_id;
    return ((id >> 4) << 16) | (1u << (id & 0xF));
  }
  return reg(r::kLdr);
}

std::uint32_t Lapic::ppr() const {
  std::uint32_t tpr = reg(r::kTpr) & 0xFF;
  std::uint32_t isrv = 0;
  for (int i = 7; i >= 0; --i) {
    std::uint32_t bits = reg(r::kIsr + 0x10 * i);
    if (bits) {
      isrv = 32 * i + (31 - std::countl_zero(bits));
      break;
    }
  }
  return (tpr & 0xF0) >= (isrv & 0xF0) ? tpr : (isrv & 0xF0);
}

std::optional<std::uint8_t> Lapic::pending_vector_locked() const {
  if (!(reg(r::kSvr) & kSvrEnable) || !(apic_base_ & kBaseEnable)) return std::nullopt;
  for (int i = 7; i >= 0; --i) {
    std::uint32_t bits = reg(r::kIrr + 0x10 * i);
    if (!bits) continue;
    auto v = static_cast<std::uint8_t>(32 * i + (31 - std::countl_zero(bits)));
    if ((v & 0xF0) > (ppr() & 0xF0)) return v;
    return std::nullopt;  // the highest one is masked by PPR, so are all lower
  }
  return std::nullopt;
}

bool Lapic::has_wake_event_locked() const {
  return nmi_pending_ || init_pending_ || sipi_pending_ || pending_vector_locked().has_value();
}

std::uint32_t Lapic::read_reg(std::uint32_t offset, Clock::time_point now) const {
  switch (offset) {
    case r::kId: return x2apic_locked() ? config_.apic_id : reg(r::kId);
    case r::kPpr: return ppr();
    case r::kLdr: return ldr_locked();
    case r::kTimerCurrent: return current_count(now);
    case r::kEoi:
    case r::kSelfIpi: return 0;
    default: return offset < 0x400 ? reg(offset) : 0;
  }
}

bool Lapic::write_reg(std::uint32_t offset, std::uint32_t value, std::vector<Ipi>& out) {
  bool x2 = x2apic_locked();
  switch (offset) {
    case r::kId:
      if (x2) return false;
      reg(r::kId) = value & 0xFF000000;
      config_.apic_id = value >> 24;
      return true;
    case r::kTpr: reg(r::kTpr) = value & 0xFF; return true;
    case r::kEoi: eoi(); return true;
    case r::kLdr:
      if (x2) return false;
      reg(r::kLdr) = value & 0xFF000000;
      return true;
    case r::kDfr:
      if (x2) return false;
      reg(r::kDfr) = value | 0x0FFFFFFF;
      return true;
    case r::kSvr: write_svr(value); return true;
    case r::kEsr: reg(r::kEsr) = 0; return true;
    case r::kIcrLow:
      reg(r::kIcrLow) = value & ~(1u << 12);  // delivery status: always idle
      send_icr((static_cast<std::uint64_t>(reg(r::kIcrHigh)) << 32) | value, out);
      return true;
    case r::kIcrHigh:
      if (x2) return false;
      reg(r::kIcrHigh) = value & 0xFF000000;
      return true;
    case r::kLvtTimer: {
      std::uint32_t v = value & 0x700FF;
      if (!(reg(r::kSvr) & kSvrEnable)) v |= kLvtMasked;
      unsigned old_mode = timer_mode();
      reg(r::kLvtTimer) = v;
      if (timer_mode() != old_mode) {  // mode switch disarms (SDM 10.5.4.1)
        timer_deadline_.reset();
        tsc_deadline_ = 0;
        reg(r::kTimerInitial) = 0;
        publish_timer();
      }
      return true;
    }
    case r::kLvtCmci: case r::kLvtThermal: case r::kLvtPerf: case r::kLvtLint0:
    case r::kLvtLint1: case r::kLvtError: {
      std::uint32_t v = value & 0x1F7FF;
      if (!(reg(r::kSvr) & kSvrEnable)) v |= kLvtMasked;
      reg(offset) = v;
      return true;
    }
    case r::kTimerInitial:
      reg(r::kTimerInitial) = value;
      if (timer_mode() != 2) start_count(clock_.now());
      return true;
    case r::kTimerDivide: reg(r::kTimerDivide) = value & 0xB; return true;
    case r::kSelfIpi: {
      if (!x2) return false;
      Ipi ipi;
      ipi.source = config_.vcpu;
      ipi.source_apic_id = config_.apic_id;
      ipi.vector = static_cast<std::uint8_t>(value);
      ipi.shorthand = DestShorthand::kSelf;
      out.push_back(ipi);
      return true;
    }
    default:
      return false;  // read-only (ID/VER/PPR/ISR/TMR/IRR/current count) or reserved
  }
}

void Lapic::write_svr(std::uint32_t value) {
  reg(r::kSvr) = value & 0x3FF;  // no directed EOI (version bit 24 clear)
  if (!(value & kSvrEnable))  // software disable masks every LVT (SDM 10.4.7.2)
    for (auto lvt : {r::kLvtCmci, r::kLvtTimer, r::kLvtThermal, r::kLvtPerf, r::kLvtLint0,
                     r::kLvtLint1, r::kLvtError})
      reg(lvt) |= kLvtMasked;
}

void Lapic::send_icr(std::uint64_t icr, std::vector<Ipi>& out) {
  Ipi ipi;
  ipi.source = config_.vcpu;
  ipi.source_apic_id = config_.apic_id;
  ipi.vector = static_cast<std::uint8_t>(icr & 0xFF);
  ipi.mode = static_cast<DeliveryMode>((icr >> 8) & 7);
  ipi.logical = (icr >> 11) & 1;
  ipi.level_assert = (icr >> 14) & 1;
  ipi.level_triggered = (icr >> 15) & 1;
  ipi.shorthand = static_cast<DestShorthand>((icr >> 18) & 3);
  ipi.destination = x2apic_locked() ? static_cast<std::uint32_t>(icr >> 32)
                                    : static_cast<std::uint32_t>(icr >> 56);
  // xAPIC "INIT level de-assert" (level trigger, deassert) is a no-op for
  // modern CPUs; older SMP bring-up code still sends it.
  if (ipi.mode == DeliveryMode::kInit && ipi.level_triggered && !ipi.level_assert) return;
  out.push_back(ipi);
}

void Lapic::eoi() {
  for (int i = 7; i >= 0; --i) {
    std::uint32_t& bits = reg(r::kIsr + 0x10 * i);
    if (bits) {
      auto v = static_cast<std::uint8_t>(32 * i + 31 - std::countl_zero(bits));
      bits &= ~vec_bit(v);  // highest in service
      if (reg(vec_reg(r::kTmr, v)) & vec_bit(v)) level_eois_.push_back(v);
      return;
    }
  }
}

bool Lapic::accept(const Ipi& ipi) {
  switch (ipi.mode) {
    case DeliveryMode::kFixed:
    case DeliveryMode::kLowestPriority:  // the machine already picked this LAPIC
      if (ipi.vector < 16) {
        reg(r::kEsr) |= 1u << 6;  // receive illegal vector
        return false;
      }
      reg(vec_reg(r::kIrr, ipi.vector)) |= vec_bit(ipi.vector);
      if (ipi.level_triggered)
        reg(vec_reg(r::kTmr, ipi.vector)) |= vec_bit(ipi.vector);
      else
        reg(vec_reg(r::kTmr, ipi.vector)) &= ~vec_bit(ipi.vector);
      return pending_vector_locked().has_value();
    case DeliveryMode::kNmi:
      // One NMI latches; more before it is taken are that one (as on the
      // CPU) and need no new wake-up: the pending one's is on its way.
      return !std::exchange(nmi_pending_, true);
    case DeliveryMode::kInit:
      reset_registers();  // INIT keeps APIC id and APIC_BASE
      init_pending_ = true;
      sipi_pending_ = false;
      wait_for_sipi_ = true;
      return true;
    case DeliveryMode::kStartup:
      if (!wait_for_sipi_) return false;  // SIPIs count only after INIT
      wait_for_sipi_ = false;
      sipi_pending_ = true;
      sipi_vector_ = ipi.vector;
      return true;
    default:
      log::get("vcpu")->debug("LAPIC {}: ignoring IPI delivery mode {}", config_.apic_id,
                              static_cast<int>(ipi.mode));
      return false;
  }
}

void Lapic::sink_and_wake(std::vector<Ipi>& out, bool wake) {
  std::function<void()> wakeup;
  std::function<void(std::uint8_t)> level_eoi;
  std::vector<std::uint8_t> eois;
  {
    std::lock_guard lock(mu_);
    if (wake) wakeup = wakeup_;
    eois.swap(level_eois_);
    if (!eois.empty()) level_eoi = level_eoi_;
  }
  for (const auto& ipi : out) sink_.send_ipi(ipi);
  if (level_eoi)
    for (auto v : eois) level_eoi(v);
  if (wakeup) wakeup();
}

void Lapic::set_level_eoi(std::function<void(std::uint8_t)> listener) {
  std::lock_guard lock(mu_);
  level_eoi_ = std::move(listener);
}

void Lapic::deliver(const Ipi& ipi) {
  bool wake;
  {
    std::lock_guard lock(mu_);
    wake = accept(ipi);
  }
  std::vector<Ipi> none;
  sink_and_wake(none, wake);
}

void Lapic::raise(std::uint8_t vector, bool level) {
  Ipi ipi;
  ipi.vector = vector;
  ipi.level_triggered = level;
  deliver(ipi);
}

std::optional<std::uint8_t> Lapic::pending_vector() const {
  std::lock_guard lock(mu_);
  return pending_vector_locked();
}

void Lapic::acknowledge(std::uint8_t v) {
  std::lock_guard lock(mu_);
  reg(vec_reg(r::kIrr, v)) &= ~vec_bit(v);
  reg(vec_reg(r::kIsr, v)) |= vec_bit(v);
}

bool Lapic::take_nmi() {
  std::lock_guard lock(mu_);
  return std::exchange(nmi_pending_, false);
}

std::optional<StartupEvent> Lapic::take_startup() {
  std::lock_guard lock(mu_);
  if (std::exchange(init_pending_, false)) return StartupEvent{StartupEvent::Kind::kInit, 0};
  if (std::exchange(sipi_pending_, false))
    return StartupEvent{StartupEvent::Kind::kSipi, sipi_vector_};
  return std::nullopt;
}

bool Lapic::has_wake_event() const {
  std::lock_guard lock(mu_);
  return has_wake_event_locked();
}

bool Lapic::has_nmi_or_startup() const {
  std::lock_guard lock(mu_);
  return nmi_pending_ || init_pending_ || sipi_pending_;
}

bool Lapic::waiting_for_sipi() const {
  std::lock_guard lock(mu_);
  return wait_for_sipi_;
}

std::uint32_t Lapic::apic_id() const {
  std::lock_guard lock(mu_);
  return config_.apic_id;
}

std::uint32_t Lapic::ldr() const {
  std::lock_guard lock(mu_);
  return ldr_locked();
}

bool Lapic::targeted_by(const Ipi& ipi) const {
  std::lock_guard lock(mu_);
  bool cluster = (reg(r::kDfr) >> 28) == 0;  // DFR model: 0xF flat, 0x0 cluster
  return ipi_targets(ipi, config_.apic_id, ldr_locked(), x2apic_locked(), cluster);
}

bool Lapic::x2apic_mode() const {
  std::lock_guard lock(mu_);
  return x2apic_locked();
}

}  // namespace ssi::vcpu
