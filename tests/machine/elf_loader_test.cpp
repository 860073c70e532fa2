#include "ssi/elf_loader.hpp"

#include <gtest/gtest.h>

#include <string>

#include "elf_builder.hpp"

namespace ssi::machine {
namespace {

using ssi::testing::ElfBuilder;

class ElfLoaderTest : public ::testing::Test {
 protected:
  MemoryMap map_ = MemoryMap::pc(8 * kMiB).value();

  // Parses and expects failure whose message contains `needle`.
  void expect_error(const std::vector<std::uint8_t>& file, const std::string& needle) {
    auto r = parse_elf(file, map_);
    ASSERT_FALSE(r.ok()) << "expected an error containing '" << needle << "'";
    EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
  }
};

TEST_F(ElfLoaderTest, LoadsSegmentsAndZeroFillsBss) {
  ElfBuilder b;
  b.segments = {{0x100000, {1, 2, 3, 4}, 0x2000, PF_R | PF_X},
                {0x200000, {9, 9}, 0x100, PF_R | PF_W}};
  auto file = b.build();
  auto image = parse_elf(file, map_);
  ASSERT_TRUE(image.ok()) << image.error().to_string();
  EXPECT_EQ(image->entry, 0x100000u);
  ASSERT_EQ(image->segments.size(), 2u);
  EXPECT_EQ(image->end(), 0x200100u);

  std::vector<std::uint8_t> backing(map_.ram_bytes(), 0xAA);
  auto ram = GuestRam::make(map_, backing).value();
  ASSERT_TRUE(load_elf(*image, file, ram).ok());
  EXPECT_EQ(ram.read_value<std::uint32_t>(Gpa{0x100000}).value(), 0x04030201u);
  EXPECT_EQ(ram.read_value<std::uint8_t>(Gpa{0x100004}).value(), 0);     // .bss zeroed
  EXPECT_EQ(ram.read_value<std::uint8_t>(Gpa{0x101FFF}).value(), 0);
  EXPECT_EQ(ram.read_value<std::uint8_t>(Gpa{0x102000}).value(), 0xAA);  // untouched past memsz
  EXPECT_EQ(ram.read_value<std::uint16_t>(Gpa{0x200000}).value(), 0x0909u);
}

TEST_F(ElfLoaderTest, RejectsTinyFile) { expect_error({0x7f, 'E'}, "too small"); }

TEST_F(ElfLoaderTest, RejectsBadMagic) {
  auto file = ElfBuilder{}.build();
  file[1] = 'X';
  expect_error(file, "bad magic");
}

TEST_F(ElfLoaderTest, RejectsTruncatedHeader) {
  auto file = ElfBuilder{}.build();
  file.resize(40);
  expect_error(file, "truncated ELF header");
}

TEST_F(ElfLoaderTest, Rejects32BitElf) {
  ElfBuilder b;
  b.cls = ELFCLASS32;
  expect_error(b.build(), "not a 64-bit");
}

TEST_F(ElfLoaderTest, RejectsOtherMachines) {
  ElfBuilder b;
  b.machine = EM_AARCH64;
  expect_error(b.build(), "not x86-64");
}

TEST_F(ElfLoaderTest, RejectsPieAndRelocatableFiles) {
  ElfBuilder b;
  b.type = ET_DYN;
  expect_error(b.build(), "not an executable");
}

TEST_F(ElfLoaderTest, RejectsProgramHeadersPastEndOfFile) {
  auto file = ElfBuilder{}.build();
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  eh.e_phoff = file.size() - 8;
  std::memcpy(file.data(), &eh, sizeof(eh));
  expect_error(file, "program headers");
}

TEST_F(ElfLoaderTest, RejectsHugeProgramHeaderOffsetWithoutOverflow) {
  auto file = ElfBuilder{}.build();
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof(eh));
  eh.e_phoff = ~0ull - 10;
  std::memcpy(file.data(), &eh, sizeof(eh));
  expect_error(file, "program headers");
}

TEST_F(ElfLoaderTest, RejectsSegmentDataPastEndOfFile) {
  auto file = ElfBuilder{}.build();
  Elf64_Phdr ph;
  std::memcpy(&ph, file.data() + ElfBuilder::phdr_offset(0), sizeof(ph));
  ph.p_offset = file.size() - 1;
  std::memcpy(file.data() + ElfBuilder::phdr_offset(0), &ph, sizeof(ph));
  expect_error(file, "past the end of the file");
}

TEST_F(ElfLoaderTest, RejectsFileSizeAboveMemorySize) {
  ElfBuilder b;
  b.segments[0].mem_size = 1;  // data is 3 bytes
  expect_error(b.build(), "exceeds memory size");
}

TEST_F(ElfLoaderTest, RejectsFileDataWithZeroMemorySize) {
  ElfBuilder b;
  b.segments.push_back({0x200000, {1, 2}, 0, PF_R});
  expect_error(b.build(), "exceeds memory size");
}

TEST_F(ElfLoaderTest, IgnoresEmptyLoadSegments) {
  ElfBuilder b;
  b.segments.push_back({0x8000, {}, 0, PF_R});  // in the boot area, but loads nothing
  EXPECT_TRUE(parse_elf(b.build(), map_).ok());
}

TEST_F(ElfLoaderTest, RejectsSegmentInBootArea) {
  ElfBuilder b;
  b.segments[0].paddr = 0x8000;
  b.entry = 0x8000;
  expect_error(b.build(), "boot area");
}

TEST_F(ElfLoaderTest, RejectsSegmentOutsideRam) {
  ElfBuilder b;
  b.segments[0].paddr = 7 * kMiB;
  b.segments[0].mem_size = 2 * kMiB;  // runs past the 8 MiB of RAM
  b.entry = 7 * kMiB;
  expect_error(b.build(), "outside guest RAM");
}

TEST_F(ElfLoaderTest, RejectsSegmentThatWrapsAround) {
  ElfBuilder b;
  b.segments[0].paddr = ~0ull - 0xFFF;
  b.segments[0].mem_size = 0x2000;
  expect_error(b.build(), "wraps");
}

TEST_F(ElfLoaderTest, RejectsOverlappingSegments) {
  ElfBuilder b;
  b.segments = {{0x100000, {0xF4}, 0x2000, PF_R | PF_X}, {0x101000, {0}, 0x1000, PF_R | PF_W}};
  expect_error(b.build(), "overlap");
}

TEST_F(ElfLoaderTest, RejectsFileWithoutLoadableSegments) {
  ElfBuilder b;
  b.segments[0].type = PT_NOTE;
  expect_error(b.build(), "no loadable");
}

TEST_F(ElfLoaderTest, RejectsEntryOutsideExecutableSegments) {
  ElfBuilder b;
  b.entry = 0x300000;
  expect_error(b.build(), "entry point");
  ElfBuilder data_only;
  data_only.segments[0].flags = PF_R | PF_W;
  expect_error(data_only.build(), "entry point");
}

TEST_F(ElfLoaderTest, RejectsVirtualAddressDifferentFromPhysical) {
  auto file = ElfBuilder{}.build();
  Elf64_Phdr ph;
  std::memcpy(&ph, file.data() + ElfBuilder::phdr_offset(0), sizeof(ph));
  ph.p_vaddr = 0xffffffff80000000ull;
  std::memcpy(file.data() + ElfBuilder::phdr_offset(0), &ph, sizeof(ph));
  expect_error(file, "identity-mapped");
}

TEST(ReadFile, ReportsMissingFileWithPathAndErrno) {
  auto r = read_file("/nonexistent/kernel.elf", 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().sys_errno, ENOENT);
  EXPECT_EQ(r.error().message, "/nonexistent/kernel.elf: No such file or directory");
}

TEST(ReadFile, RefusesDirectories) {
  auto r = read_file("/", 1 << 20);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace ssi::machine
