// Userspace local APIC (no in-kernel irqchip, so an IPI to another node is a
// message; docs/vcpu.md): the guest reaches
// it through xAPIC MMIO at APIC_BASE (default 0xFEE00000) or x2APIC MSRs
// 0x800-0x8ff. IPIs leave through an IpiSink, so the machine can route them
// to a vCPU on this node or to another node as a message. Thread-safe: other
// vCPUs' threads and timer threads deliver into it while its own vCPU runs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/clock.hpp"
#include "base/ids.hpp"
#include "base/result.hpp"

namespace ssi::vcpu {

inline constexpr std::uint64_t kLapicDefaultBase = 0xFEE00000;
inline constexpr std::uint32_t kX2apicMsrFirst = 0x800;
inline constexpr std::uint32_t kX2apicMsrLast = 0x8ff;
inline constexpr std::uint32_t kMsrApicBase = 0x1b;
inline constexpr std::uint32_t kMsrTscDeadline = 0x6e0;

// xAPIC register offsets (x2APIC MSR = 0x800 + offset / 16).
namespace apic_reg {
inline constexpr std::uint32_t kId = 0x20, kVersion = 0x30, kTpr = 0x80, kApr = 0x90,
    kPpr = 0xA0, kEoi = 0xB0, kLdr = 0xD0, kDfr = 0xE0, kSvr = 0xF0, kIsr = 0x100,
    kTmr = 0x180, kIrr = 0x200, kEsr = 0x280, kLvtCmci = 0x2F0, kIcrLow = 0x300,
    kIcrHigh = 0x310, kLvtTimer = 0x320, kLvtThermal = 0x330, kLvtPerf = 0x340,
    kLvtLint0 = 0x350, kLvtLint1 = 0x360, kLvtError = 0x370, kTimerInitial = 0x380,
    kTimerCurrent = 0x390, kTimerDivide = 0x3E0, kSelfIpi = 0x3F0;
}  // namespace apic_reg

enum class DeliveryMode : std::uint8_t {
  kFixed = 0, kLowestPriority = 1, kSmi = 2, kNmi = 4, kInit = 5, kStartup = 6, kExtInt = 7
};
enum class DestShorthand : std::uint8_t {
  kNone = 0, kSelf = 1, kAllIncludingSelf = 2, kAllExcludingSelf = 3
};

// One interprocessor interrupt as written to the ICR.
struct Ipi {
  VcpuId source;
  std::uint32_t source_apic_id = 0;
  DeliveryMode mode = DeliveryMode::kFixed;
  std::uint8_t vector = 0;
  DestShorthand shorthand = DestShorthand::kNone;
  std::uint32_t destination = 0;  // APIC id (physical) or logical mask
  bool logical = false;
  bool level_assert = true;       // INIT level de-assert IPIs are ignored
  bool level_triggered = false;
};

// Pure: would a LAPIC with this APIC id / LDR accept `ipi`? Handles the
// shorthands, broadcast (0xFF xAPIC, 0xFFFFFFFF x2APIC), x2APIC cluster
// logical mode and, in xAPIC, the flat or (`cluster`, DFR = 0x0FFFFFFF)
// cluster logical model. Lapic::targeted_by applies it with its own state.
bool ipi_targets(const Ipi& ipi, std::uint32_t apic_id, std::uint32_t ldr, bool x2apic,
                 bool cluster = false);

// The machine routes IPIs (to Lapic::deliver on this node, or over the
// transport). Called without any LAPIC lock held, possibly on a vCPU thread.
class IpiSink {
 public:
  virtual ~IpiSink() = default;
  virtual void send_ipi(const Ipi& ipi) = 0;
};

// Asks for Lapic::update_timer(now) to run on the vCPU soon after
// `deadline` (nullopt: nothing armed). Production: TimerThread (timer.hpp).
class TimerScheduler {
 public:
  virtual ~TimerScheduler() = default;
  virtual void schedule(VcpuId vcpu, std::optional<Clock::time_point> deadline) = 0;
};

// Maps host time to the guest's TSC for TSC-deadline mode:
// tsc(t) = tsc_at_epoch + (t - epoch) * tsc_hz.
struct TscModel {
  std::uint64_t tsc_hz = 1'000'000'000;
  Clock::time_point epoch{};
  std::uint64_t tsc_at_epoch = 0;
};

// What the vCPU's CPUID says about the APIC (the runner reads it at start):
// APIC_BASE bits at or above phys_bits are reserved; EXTD needs x2APIC.
struct LapicFeatures {
  unsigned phys_bits = 36;
  bool x2apic = true;
};

struct LapicConfig {
  VcpuId vcpu;
  std::uint32_t apic_id = 0;
  bool bsp = false;                 // APs start waiting for SIPI
  std::uint64_t bus_hz = 1'000'000'000;  // timer input clock before divide (QEMU's 1 GHz)
  TscModel tsc;
};

// INIT / SIPI taken by the runner (Lapic::take_startup).
struct StartupEvent {
  enum class Kind { kInit, kSipi } kind;
  std::uint8_t vector = 0;  // kSipi: start at CS = vector << 8, RIP 0 (real mode)
};

// Everything needed to recreate the LAPIC elsewhere (part of CpuState).
// The timer is stored relative to "now" so another host's clock works.
struct LapicState {
  std::array<std::uint32_t, 64> regs{};  // register file, index = offset / 16
  std::uint64_t apic_base = 0;
  std::uint64_t tsc_deadline = 0;
  std::int64_t timer_remaining_ns = -1;  // -1: not armed
  std::uint32_t apic_id = 0;
  bool nmi_pending = false;
  bool wait_for_sipi = false;
  bool init_pending = false;
  bool sipi_pending = false;
  std::uint8_t sipi_vector = 0;
  bool operator==(const LapicState&) const = default;
};

class Lapic {
 public:
  Lapic(LapicConfig config, const Clock& clock, IpiSink& sink, TimerScheduler* timers);

  // --- guest accesses (on the vCPU thread) ---
  // Is `gpa` in this LAPIC's xAPIC MMIO page (enabled, not in x2APIC mode)?
  bool mmio_hit(std::uint64_t gpa) const;
  // Reads fill `data` (1..8 bytes; odd sizes read within one register).
  void mmio_read(std::uint64_t gpa, std::span<std::uint8_t> data);
  void mmio_write(std::uint64_t gpa, std::span<const std::uint8_t> data);
  // x2APIC MSRs (only in x2APIC mode, as on hardware), APIC_BASE,
  // TSC_DEADLINE. Error => the guest gets #GP.
  static bool handles_msr(std::uint32_t index);
  void set_features(const LapicFeatures& features);
  std::uint64_t apic_base() const;
  Result<std::uint64_t> msr_read(std::uint32_t index);
  Result<void> msr_write(std::uint32_t index, std::uint64_t value);

  // CR8 is an alias of TPR[7:4] (SDM 10.8.6.1): a `mov cr8` sets TPR to
  // cr8 << 4; CR8 reads TPR >> 4. The runner syncs both ways around KVM_RUN.
  std::uint8_t cr8() const;
  void write_cr8(std::uint8_t cr8);

  // --- delivery from outside (any thread) ---
  void deliver(const Ipi& ipi);                     // routed by the machine
  void raise(std::uint8_t vector, bool level = false);  // device interrupt
  // Called (without the lock) whenever something became pending that the
  // vCPU must act on: the runner installs its notify().
  void set_wakeup(std::function<void()> wakeup);
  // Called (without the lock, on the vCPU thread) with the vector of each
  // EOI of a level-triggered interrupt: the EOI broadcast to the IOAPIC.
  void set_level_eoi(std::function<void(std::uint8_t vector)> listener);

  // --- the runner (on the vCPU thread) ---
  // Fires the timer if its deadline is <= now (periodic: re-arms).
  void update_timer(Clock::time_point now);
  std::optional<Clock::time_point> timer_deadline() const;
  // Highest-priority IRR vector above PPR (nullopt if none or SW-disabled).
  std::optional<std::uint8_t> pending_vector() const;
  // The vector was injected: IRR -> ISR, PPR rises.
  void acknowledge(std::uint8_t vector);
  bool take_nmi();
  std::optional<StartupEvent> take_startup();
  // Wake-worthy: an interrupt above PPR, an NMI, INIT or SIPI.
  bool has_wake_event() const;
  bool has_nmi_or_startup() const;
  bool waiting_for_sipi() const;

  // The guest TSC <-> host time mapping for TSC-deadline mode (see
  // read_tsc_model in runner.hpp); set before the guest runs.
  void set_tsc_model(const TscModel& tsc);

  std::uint32_t apic_id() const;
  VcpuId vcpu() const { return config_.vcpu; }
  std::uint32_t ldr() const;
  bool x2apic_mode() const;
  // Would this LAPIC accept `ipi` (ipi_targets with its id, LDR and DFR)?
  bool targeted_by(const Ipi& ipi) const;

  LapicState save() const;
  void restore(const LapicState& state);

 private:
  // Everything below runs with mu_ held. IPIs produced while locked are
  // collected in `out` and sent to the sink after unlocking (a self-IPI
  // comes straight back into deliver()).
  std::uint32_t read_reg(std::uint32_t offset, Clock::time_point now) const;
  // Returns false for a write the guest may not do (x2APIC: #GP).
  bool write_reg(std::uint32_t offset, std::uint32_t value, std::vector<Ipi>& out);
  void send_icr(std::uint64_t icr, std::vector<Ipi>& out);
  void write_svr(std::uint32_t value);
  Result<void> write_apic_base(std::uint64_t value);
  Result<void> write_x2apic(std::uint32_t offset, std::uint64_t value, std::vector<Ipi>& out);
  bool accept(const Ipi& ipi);  // true: the vCPU should be notified
  void reset_registers();       // power-on / INIT values
  void eoi();
  std::uint32_t ppr() const;
  std::optional<std::uint8_t> pending_vector_locked() const;
  bool has_wake_event_locked() const;
  std::uint32_t& reg(std::uint32_t offset) { return regs_[offset >> 4]; }
  std::uint32_t reg(std::uint32_t offset) const { return regs_[offset >> 4]; }
  bool x2apic_locked() const;
  std::uint32_t ldr_locked() const;
  // Timer (lapic_timer.cpp).
  unsigned timer_mode() const;  // 0 one-shot, 1 periodic, 2 TSC deadline
  Clock::duration timer_period() const;
  void start_count(Clock::time_point now);  // initial-count write
  void set_tsc_deadline(std::uint64_t tsc);
  std::uint32_t current_count(Clock::time_point now) const;
  void publish_timer();  // tell the TimerScheduler about timer_deadline_
  void sink_and_wake(std::vector<Ipi>& out, bool wake);

  LapicConfig config_;
  const Clock& clock_;
  IpiSink& sink_;
  TimerScheduler* timers_;
  std::function<void()> wakeup_;
  std::function<void(std::uint8_t)> level_eoi_;
  std::vector<std::uint8_t> level_eois_;  // to broadcast after unlocking

  mutable std::mutex mu_;
  std::array<std::uint32_t, 64> regs_{};
  std::uint64_t apic_base_ = 0;
  LapicFeatures features_;
  std::uint64_t tsc_deadline_ = 0;
  std::optional<Clock::time_point> timer_deadline_;
  bool nmi_pending_ = false;
  bool wait_for_sipi_ = false;
  bool init_pending_ = false;
  bool sipi_pending_ = false;
  std::uint8_t sipi_vector_ = 0;
};

}  // namespace ssi::vcpu
