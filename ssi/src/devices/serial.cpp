#include "ssi/devices/serial.hpp"

#include <unistd.h>

#include <cerrno>

namespace ssi::machine {

namespace {
enum Reg : unsigned { kData = 0, kIer = 1, kIir = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7 };
constexpr std::uint8_t kIirNoInterrupt = 0x01, kIirThre = 0x02;
constexpr std::uint8_t kIerThre = 0x02;
constexpr std::uint8_t kIirFifoEnabled = 0xC0;
constexpr std::size_t kMaxLine = 512;
}  // namespace

void Serial16550::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < kUartPorts ? read_reg(static_cast<unsigned>(offset + i)) : 0xFF;
  }
}

void Serial16550::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (offset + i < kUartPorts) write_reg(static_cast<unsigned>(offset + i), data[i]);
  }
}

std::uint8_t Serial16550::read_reg(unsigned reg) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (reg) {
    case kData: return dlab ? dll_ : 0;  // no receive path: RBR reads 0
    case kIer: return dlab ? dlm_ : ier_;
    case kIir: {
      std::uint8_t fifo = (fcr_ & 1) ? kIirFifoEnabled : 0;
      if (!(thre_pending_ && (ier_ & kIerThre))) return kIirNoInterrupt | fifo;
      thre_pending_ = false;  // reading IIR acknowledges the THRE interrupt
      update_irq();
      return kIirThre | fifo;
    }
    case kLcr: return lcr_;
    case kMcr: return mcr_;
    case kLsr: return kLsrThre | kLsrTemt;  // transmits complete instantly
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (drivers probe this).
        return static_cast<std::uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) |
                                         ((mcr_ & 0x04) << 4) | ((mcr_ & 0x08) << 4));
      }
      return 0xB0;  // DCD, DSR, CTS: a terminal is attached
    case kScr: return scr_;
  }
  return 0xFF;
}

void Serial16550::write_reg(unsigned reg, std::uint8_t v) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (reg) {
    case kData:
      if (dlab) {
        dll_ = v;
      } else {
        if (!(mcr_ & kMcrLoop)) sink_(static_cast<char>(v));
        thre_pending_ = false;  // THR full ...
        update_irq();
        thre_pending_ = true;   // ... and sent at once: a new THRE edge
        update_irq();
      }
      break;
    case kIer:
      if (dlab) {
        dlm_ = v;
      } else {
        // Enabling the THRE interrupt with THR empty raises it (8250 driver
        // probes for exactly this).
        if ((v & kIerThre) && !(ier_ & kIerThre)) thre_pending_ = true;
        ier_ = v & 0x0F;
        update_irq();
      }
      break;
    case kIir: fcr_ = v; break;  // FCR on write
    case kLcr: lcr_ = v; break;
    case kMcr: mcr_ = v & 0x1F; break;
    case kScr: scr_ = v; break;
    default: break;  // LSR and MSR are read-only
  }
}

void Serial16550::update_irq() {
  bool high = thre_pending_ && (ier_ & kIerThre);
  if (high == line_) return;
  line_ = high;
  if (irq_) irq_(high);
}

void LineWriter::put(char c) {
  std::lock_guard lock(mu_);
  line_.push_back(c);
  if (c == '\n' || line_.size() >= kMaxLine) flush_locked();
}

void LineWriter::flush() {
  std::lock_guard lock(mu_);
  flush_locked();
}

void LineWriter::flush_locked() {
  if (observer_ && !line_.empty()) observer_(line_);
  std::size_t done = 0;
  while (done < line_.size()) {
    ssize_t n = ::write(fd_, line_.data() + done, line_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // console gone: drop output rather than stall the guest
    done += static_cast<std::size_t>(n);
  }
  line_.clear();
}

}  // namespace ssi::machine

namespace ssi::machine {

void Serial16550::save(StateWriter& w) {
  std::lock_guard lock(mu_);
  for (std::uint8_t v : {ier_, lcr_, mcr_, scr_, fcr_, dll_, dlm_}) w.pod(v);
  w.pod(static_cast<std::uint8_t>(thre_pending_));
  w.pod(static_cast<std::uint8_t>(line_));
}

bool Serial16550::restore(StateReader& r) {
  std::lock_guard lock(mu_);
  for (std::uint8_t* v : {&ier_, &lcr_, &mcr_, &scr_, &fcr_, &dll_, &dlm_}) *v = r.pod<std::uint8_t>();
  thre_pending_ = r.pod<std::uint8_t>() != 0;
  // The IRQ line as it was; the IOAPIC restores its side of it (no new edge).
  line_ = r.pod<std::uint8_t>() != 0;
  return !r.failed();
}

}  // namespace ssi::machine
