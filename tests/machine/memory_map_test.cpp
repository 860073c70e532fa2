#include "ssi/memory_map.hpp"

#include <gtest/gtest.h>

namespace ssi::machine {
namespace {

TEST(MemoryMap, PcLayoutPutsRamBootAreaAndApicWindows) {
  auto map = MemoryMap::pc(64 * kMiB);
  ASSERT_TRUE(map.ok()) << map.error().to_string();
  EXPECT_EQ(map->ram_bytes(), 64 * kMiB);
  EXPECT_EQ(map->ram_end(), 64 * kMiB);
  EXPECT_EQ(map->find(Gpa{0x1000})->kind, RegionKind::kBootArea);
  EXPECT_EQ(map->find(Gpa{kBootAreaEnd})->kind, RegionKind::kRam);
  EXPECT_EQ(map->find(Gpa{kLapicBase + 0x300})->kind, RegionKind::kLapic);
  EXPECT_EQ(map->find(Gpa{kIoApicBase})->kind, RegionKind::kIoApic);
  EXPECT_EQ(map->find(Gpa{kPciHoleStart})->kind, RegionKind::kPciHole);
  EXPECT_FALSE(map->find(Gpa{64 * kMiB}).has_value());  // beyond RAM, below the hole
}

TEST(MemoryMap, RamAboveThePciHoleMovesToFourGiB) {
  auto map = MemoryMap::pc(4 * kGiB);
  ASSERT_TRUE(map.ok());
  EXPECT_EQ(map->ram_end(), kHighRamStart + 1 * kGiB);
  EXPECT_EQ(map->find(Gpa{kHighRamStart})->kind, RegionKind::kRam);
  // Backing-buffer offsets run on past the low RAM without a gap for the hole.
  EXPECT_EQ(map->ram_offset(Gpa{kHighRamStart}, 8).value(), kPciHoleStart);
  EXPECT_EQ(map->ram_offset(Gpa{0x2000}, 8).value(), 0x2000u);
  EXPECT_FALSE(map->ram_offset(Gpa{kPciHoleStart}, 8).ok());
  // A range straddling low RAM's end and the hole is not RAM.
  EXPECT_FALSE(map->ram_offset(Gpa{kPciHoleStart - 4}, 8).ok());
}

TEST(MemoryMap, RejectsSizesOutsideLimitsOrNotTwoMiBMultiples) {
  EXPECT_FALSE(MemoryMap::pc(2 * kMiB).ok());
  EXPECT_FALSE(MemoryMap::pc(kMaxRam + kRamGranule).ok());
  auto odd = MemoryMap::pc(65 * kMiB);
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("multiple of 2 MiB"), std::string::npos);
  EXPECT_TRUE(MemoryMap::pc(kMinRam).ok());
}

TEST(MemoryMap, FromRegionsRejectsOverlapAndWrap) {
  auto overlap = MemoryMap::from_regions({{"a", RegionKind::kRam, Gpa{0}, 0x2000},
                                          {"b", RegionKind::kPciHole, Gpa{0x1000}, 0x1000}});
  ASSERT_FALSE(overlap.ok());
  EXPECT_NE(overlap.error().message.find("overlaps"), std::string::npos);
  EXPECT_FALSE(
      MemoryMap::from_regions({{"w", RegionKind::kRam, Gpa{~0ull - 0xFFF}, 0x2000}}).ok());
  EXPECT_FALSE(MemoryMap::from_regions({{"e", RegionKind::kRam, Gpa{0}, 0}}).ok());
  // Adjacent regions are fine.
  EXPECT_TRUE(MemoryMap::from_regions({{"a", RegionKind::kRam, Gpa{0}, 0x1000},
                                       {"b", RegionKind::kRam, Gpa{0x1000}, 0x1000}})
                  .ok());
}

TEST(ParseSize, AcceptsBinarySuffixes) {
  EXPECT_EQ(parse_size("4096").value(), 4096u);
  EXPECT_EQ(parse_size("64M").value(), 64 * kMiB);
  EXPECT_EQ(parse_size("1G").value(), kGiB);
  EXPECT_EQ(parse_size("2g").value(), 2 * kGiB);
  EXPECT_EQ(parse_size("512K").value(), 512 * kKiB);
  EXPECT_EQ(parse_size("1GiB").value(), kGiB);
}

TEST(ParseSize, RejectsGarbageAndOverflow) {
  EXPECT_FALSE(parse_size("").ok());
  EXPECT_FALSE(parse_size("M").ok());
  EXPECT_FALSE(parse_size("12X").ok());
  EXPECT_FALSE(parse_size("-1M").ok());
  EXPECT_FALSE(parse_size("1.5G").ok());
  EXPECT_FALSE(parse_size("99999999999T").ok());
}

}  // namespace
}  // namespace ssi::machine
