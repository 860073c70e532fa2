// The PC's CMOS real-time clock (MC146818) at ports 0x70 (index; bit 7 of
// a write is the NMI mask, ignored) and 0x71 (data), so a guest
// reads the wall-clock date at boot and Linux's rtc_cmos driver finds the
// chip it probes for (without one it spins in its update-in-progress loop:
// every read of 0xff says "update in progress").
//
// Time is the host's CLOCK_REALTIME plus an offset the guest sets by writing
// the time registers; registers are BCD or binary and 24- or 12-hour as
// register B says; the update-in-progress bit never shows (each read is
// computed whole). Alarm and periodic interrupts (IRQ 8) are not raised; the
// alarm registers and the 114 bytes of CMOS RAM keep what the guest wrote.
#pragma once

#include <array>
#include <cstdint>
#include <ctime>
#include <functional>
#include <mutex>

#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/state_bytes.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kRtcPort = 0x70;
inline constexpr std::uint64_t kRtcPorts = 2;

class Rtc final : public IoDevice {
 public:
  // `now` gives the host's wall clock (seconds since 1970, UTC); tests pass
  // their own.
  explicit Rtc(std::function<std::time_t()> now = [] { return std::time(nullptr); });

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Checkpoint: index, register B, the guest's clock offset and CMOS RAM.
  void save(StateWriter& w);
  bool restore(StateReader& r);

 private:
  std::uint8_t reg(std::uint8_t index);           // mu_ held
  void set_reg(std::uint8_t index, std::uint8_t v);  // mu_ held
  std::uint8_t encode(int value) const;            // binary or BCD, as register B says
  int decode(std::uint8_t v) const;

  std::function<std::time_t()> now_;
  std::mutex mu_;
  std::uint8_t index_ = 0;
  std::int64_t offset_s_ = 0;        // guest time - host time
  std::array<std::uint8_t, 128> cmos_{};  // alarms, A, B and RAM; time comes from the clock
};

}  // namespace ssi::machine
