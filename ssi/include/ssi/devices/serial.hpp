// 16550A UART, transmit side: enough for a polling console driver and for
// an interrupt-driven one (Linux's 8250): THR, IER, IIR/FCR, LCR (with DLAB
// divisor latch), MCR (with loopback), LSR (transmitter always ready), MSR,
// SCR. Transmitted bytes go to a sink; there is no receive path yet (LSR.DR
// stays 0). The THRE interrupt (IER bit 1) drives the IRQ line (ISA IRQ 4
// for COM1) as QEMU's UART does: raised while THR is empty and not yet
// acknowledged by an IIR read, pulsed low by each THR write.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/state_bytes.hpp"

namespace ssi::machine {

inline constexpr std::uint64_t kCom1Port = 0x3F8;
inline constexpr std::uint64_t kUartPorts = 8;
inline constexpr unsigned kCom1Irq = 4;

class Serial16550 : public IoDevice {
 public:
  using Sink = std::function<void(char)>;
  using Irq = std::function<void(bool high)>;
  explicit Serial16550(Sink sink) : sink_(std::move(sink)) {}
  // The interrupt line (set before any vCPU runs); unset: no interrupts.
  void set_irq(Irq irq) { irq_ = std::move(irq); }

  void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
  void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  // Checkpoint (docs/checkpoint.md): the guest-visible state, appended /
  // read back in a fixed order. restore() is false on short input.
  void save(StateWriter& w);
  bool restore(StateReader& r);

  // Register offsets and bits a driver polls (also used by the tests).
  static constexpr std::uint8_t kLsrThre = 0x20, kLsrTemt = 0x40, kLsrDr = 0x01;
  static constexpr std::uint8_t kLcrDlab = 0x80, kMcrLoop = 0x10;

 private:
  std::uint8_t read_reg(unsigned reg);
  void write_reg(unsigned reg, std::uint8_t v);
  void update_irq();  // drive the line from IER and the pending THRE interrupt

  Sink sink_;
  Irq irq_;
  bool thre_pending_ = false;  // THR empty, not yet reported by an IIR read
  bool line_ = false;
  std::mutex mu_;
  std::uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0, fcr_ = 0;
  std::uint8_t dll_ = 0x0C, dlm_ = 0;  // 9600 baud, as firmware leaves it
};

// Writes console bytes to a file descriptor line by line (the vCPU threads
// share stdout with logs, so partial lines are kept together).
class LineWriter {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}
  ~LineWriter() { flush(); }
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  void put(char c);
  void flush();
  // Sees every line written (under the writer's lock); set before use.
  void set_observer(std::function<void(std::string_view)> f) { observer_ = std::move(f); }

 private:
  void flush_locked();
  int fd_;
  std::mutex mu_;
  std::string line_;
  std::function<void(std::string_view)> observer_;
};

}  // namespace ssi::machine
