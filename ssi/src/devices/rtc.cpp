#include "ssi/devices/rtc.hpp"

namespace ssi::machine {
namespace {

enum : std::uint8_t {
  kSeconds = 0x00, kMinutes = 0x02, kHours = 0x04, kWeekday = 0x06, kDay = 0x07, kMonth = 0x08,
  kYear = 0x09, kRegA = 0x0a, kRegB = 0x0b, kRegC = 0x0c, kRegD = 0x0d, kCentury = 0x32,
};
constexpr std::uint8_t kRegB24Hour = 0x02, kRegBBinary = 0x04;
constexpr std::uint8_t kRegDValid = 0x80;  // battery good: the time and RAM are valid
constexpr std::uint8_t kRegAStandard = 0x26;  // 32.768 kHz time base, 1024 Hz rate; UIP clear
constexpr std::uint8_t kPm = 0x80;

bool is_time_field(std::uint8_t i) {
  return i == kSeconds || i == kMinutes || i == kHours || i == kWeekday || i == kDay || i == kMonth ||
         i == kYear || i == kCentury;
}

}  // namespace

Rtc::Rtc(std::function<std::time_t()> now) : now_(std::move(now)) {
  cmos_[kRegA] = kRegAStandard;
  cmos_[kRegB] = kRegB24Hour;  // BCD, 24-hour: what a PC's firmware leaves
}

std::uint8_t Rtc::encode(int value) const {
  if (cmos_[kRegB] & kRegBBinary) return static_cast<std::uint8_t>(value);
  return static_cast<std::uint8_t>(((value / 10) << 4) | (value % 10));
}

int Rtc::decode(std::uint8_t v) const {
  if (cmos_[kRegB] & kRegBBinary) return v;
  return (v >> 4) * 10 + (v & 0x0f);
}

std::uint8_t Rtc::reg(std::uint8_t index) {
  if (!is_time_field(index)) {
    if (index == kRegC) return 0;  // no interrupt flags: none is raised
    if (index == kRegD) return kRegDValid;
    return cmos_[index];
  }
  std::time_t t = static_cast<std::time_t>(now_() + offset_s_);
  std::tm tm{};
  gmtime_r(&t, &tm);
  switch (index) {
    case kSeconds: return encode(tm.tm_sec);
    case kMinutes: return encode(tm.tm_min);
    case kHours: {
      if (cmos_[kRegB] & kRegB24Hour) return encode(tm.tm_hour);
      int h = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
      return static_cast<std::uint8_t>(encode(h) | (tm.tm_hour >= 12 ? kPm : 0));
    }
    case kWeekday: return encode(tm.tm_wday + 1);
    case kDay: return encode(tm.tm_mday);
    case kMonth: return encode(tm.tm_mon + 1);
    case kYear: return encode(tm.tm_year % 100);
    default: return encode((tm.tm_year + 1900) / 100);  // kCentury
  }
}

void Rtc::set_reg(std::uint8_t index, std::uint8_t v) {
  if (index == kRegC || index == kRegD) return;  // read-only
  if (index == kRegA) {
    cmos_[kRegA] = v & 0x7f;  // UIP is read-only
    return;
  }
  if (!is_time_field(index) || index == kWeekday) {
    cmos_[index] = v;
    return;
  }
  // A time field: the guest's clock becomes the current one with that field
  // replaced, kept as an offset from the host's clock.
  std::time_t host = now_();
  std::time_t t = static_cast<std::time_t>(host + offset_s_);
  std::tm tm{};
  gmtime_r(&t, &tm);
  switch (index) {
    case kSeconds: tm.tm_sec = decode(v); break;
    case kMinutes: tm.tm_min = decode(v); break;
    case kHours:
      if (cmos_[kRegB] & kRegB24Hour) {
        tm.tm_hour = decode(v);
      } else {
        int h = decode(v & static_cast<std::uint8_t>(~kPm)) % 12;
        tm.tm_hour = h + ((v & kPm) ? 12 : 0);
      }
      break;
    case kDay: tm.tm_mday = decode(v); break;
    case kMonth: tm.tm_mon = decode(v) - 1; break;
    case kYear: tm.tm_year = (tm.tm_year + 1900) / 100 * 100 + decode(v) - 1900; break;
    default: tm.tm_year = decode(v) * 100 + (tm.tm_year + 1900) % 100 - 1900; break;  // kCentury
  }
  offset_s_ = static_cast<std::int64_t>(timegm(&tm)) - static_cast<std::int64_t>(host);
}

void Rtc::read(std::uint64_t offset, std::span<std::uint8_t> data) {
  std::lock_guard lock(mu_);
  std::uint8_t v = offset == 0 ? index_ : reg(index_);
  set_io_value(data, v);
}

void Rtc::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
  std::lock_guard lock(mu_);
  auto v = static_cast<std::uint8_t>(io_value(data));
  if (offset == 0)
    index_ = v & 0x7f;  // bit 7: NMI mask
  else
    set_reg(index_, v);
}

void Rtc::save(StateWriter& w) {
  std::lock_guard lock(mu_);
  w.pod(index_);
  w.pod(offset_s_);
  w.pod(cmos_);
}

bool Rtc::restore(StateReader& r) {
  std::lock_guard lock(mu_);
  index_ = r.pod<std::uint8_t>();
  offset_s_ = r.pod<std::int64_t>();
  cmos_ = r.pod<std::array<std::uint8_t, 128>>();
  return !r.failed();
}

}  // namespace ssi::machine
