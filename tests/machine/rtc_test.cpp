// The CMOS RTC (ssi/devices/rtc.hpp): what Linux's rtc_cmos and its boot-time
// clock read through ports 0x70/0x71, checked against a fixed host clock.
#include <gtest/gtest.h>

#include <array>
#include <ctime>

#include "ssi/devices/rtc.hpp"

namespace ssi::machine {
namespace {

// 2026-12-06 19:04:05 UTC, a Sunday.
constexpr std::time_t kNow = 1796583845;

struct Ports {
  Rtc& rtc;
  std::uint8_t in(std::uint8_t index) {
    std::array<std::uint8_t, 1> b{index};
    rtc.write(0, b);
    rtc.read(1, b);
    return b[0];
  }
  void out(std::uint8_t index, std::uint8_t v) {
    std::array<std::uint8_t, 1> b{index};
    rtc.write(0, b);
    b[0] = v;
    rtc.write(1, b);
  }
};

TEST(Rtc, ReadsTheHostClockInBcdAnd24HoursAsFirmwareLeavesIt) {
  std::time_t now = kNow;
  Rtc rtc([&] { return now; });
  Ports p{rtc};
  std::tm tm{};
  gmtime_r(&kNow, &tm);
  ASSERT_EQ(tm.tm_year + 1900, 2026);  // the constant is what the comment says
  ASSERT_EQ(tm.tm_hour, 19);
  EXPECT_EQ(p.in(0x00), 0x05);  // seconds, BCD
  EXPECT_EQ(p.in(0x02), 0x04);
  EXPECT_EQ(p.in(0x04), 0x19);
  EXPECT_EQ(p.in(0x06), 0x01);  // Sunday = 1
  EXPECT_EQ(p.in(0x07), 0x06);
  EXPECT_EQ(p.in(0x08), 0x12);
  EXPECT_EQ(p.in(0x09), 0x26);
  EXPECT_EQ(p.in(0x32), 0x20);  // century
  EXPECT_EQ(p.in(0x0a) & 0x80, 0);  // never "update in progress"
  EXPECT_EQ(p.in(0x0b), 0x02);      // 24-hour, BCD
  EXPECT_EQ(p.in(0x0d), 0x80);      // valid
  now += 61;
  EXPECT_EQ(p.in(0x00), 0x06);
  EXPECT_EQ(p.in(0x02), 0x05);
}

TEST(Rtc, BinaryAnd12HourModesFollowRegisterB) {
  Rtc rtc([] { return kNow; });
  Ports p{rtc};
  p.out(0x0b, 0x04);  // binary, 12-hour
  EXPECT_EQ(p.in(0x04), 0x80 | 7);  // 7 PM
  EXPECT_EQ(p.in(0x09), 26);
  p.out(0x0b, 0x06);  // binary, 24-hour
  EXPECT_EQ(p.in(0x04), 19);
}

TEST(Rtc, SettingTheTimeKeepsItsOffsetFromTheHostClock) {
  std::time_t now = kNow;
  Rtc rtc([&] { return now; });
  Ports p{rtc};
  p.out(0x09, 0x30);  // year 2030 (BCD)
  p.out(0x04, 0x08);  // 08 h
  EXPECT_EQ(p.in(0x09), 0x30);
  EXPECT_EQ(p.in(0x04), 0x08);
  now += 3600;  // the guest's clock runs on with the host's
  EXPECT_EQ(p.in(0x04), 0x09);
  EXPECT_EQ(p.in(0x09), 0x30);
  p.out(0x0b, 0x00);  // 12-hour BCD: 9 AM reads 0x09, 9 PM would be 0x89
  p.out(0x04, 0x80 | 0x11);  // write 11 PM
  p.out(0x0b, 0x02);
  EXPECT_EQ(p.in(0x04), 0x23);
}

TEST(Rtc, RamKeepsItsBytesAndStatusRegistersAreReadOnly) {
  Rtc rtc([] { return kNow; });
  Ports p{rtc};
  p.out(0x40, 0xab);
  p.out(0x0c, 0xff);
  p.out(0x0d, 0x00);
  p.out(0x0a, 0xa6);  // UIP cannot be set
  EXPECT_EQ(p.in(0x40), 0xab);
  EXPECT_EQ(p.in(0x0c), 0x00);
  EXPECT_EQ(p.in(0x0d), 0x80);
  EXPECT_EQ(p.in(0x0a), 0x26);
  // Bit 7 of the index is the NMI mask, not part of the index.
  p.out(0x80 | 0x40, 0xcd);
  EXPECT_EQ(p.in(0x40), 0xcd);
}

TEST(Rtc, SaveAndRestoreKeepTheGuestsClockAndRam) {
  std::time_t now = kNow;
  Rtc a([&] { return now; }), b([&] { return now; });
  Ports pa{a}, pb{b};
  pa.out(0x09, 0x31);
  pa.out(0x41, 0x5a);
  StateWriter w;
  a.save(w);
  StateReader r(w.bytes());
  ASSERT_TRUE(b.restore(r));
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(pb.in(0x09), 0x31);
  EXPECT_EQ(pb.in(0x41), 0x5a);
  StateReader short_input(std::span(w.bytes()).first(4));
  EXPECT_FALSE(b.restore(short_input));
}

}  // namespace
}  // namespace ssi::machine
