#include "ssi/linux_boot.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <random>
#include <string>

#include "bzimage_builder.hpp"
#include "ssi/e820.hpp"
#include "ssi/lazy_ram.hpp"

namespace ssi::machine {
namespace {

using ssi::testing::BzImageBuilder;
using ssi::testing::LazyRam;
namespace bz = bzimage;

class LinuxBootTest : public ::testing::Test {
 protected:
  void make_ram(std::uint64_t bytes) {
    map_ = MemoryMap::pc(bytes).value();
    backing_.emplace(map_.ram_bytes());
    ASSERT_EQ(backing_->span().size(), map_.ram_bytes());
    ram_.emplace(GuestRam::make(map_, backing_->span()).value());
  }
  template <typename T>
  T zp(std::uint64_t off) {
    return ram_->read_value<T>(Gpa{kBootParamsGpa + off}).value();
  }

  MemoryMap map_;
  std::optional<LazyRam> backing_;
  std::optional<GuestRam> ram_;
};

TEST_F(LinuxBootTest, ParsesTheSetupHeader) {
  auto file = BzImageBuilder{}.build();
  EXPECT_TRUE(looks_like_bzimage(file));
  auto img = parse_bzimage(file);
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->version, 0x020F);
  EXPECT_EQ(img->setup_bytes, 5u * 512);
  EXPECT_EQ(img->kernel_bytes, 8192u);
  EXPECT_EQ(img->header_end, 0x26Cu);
  EXPECT_TRUE(img->relocatable);
  EXPECT_EQ(img->pref_address, 0x1000000u);
  EXPECT_EQ(img->cmdline_size, 2047u);
}

TEST_F(LinuxBootTest, ZeroSetupSectsMeansFour) {
  BzImageBuilder b;
  b.setup_sects = 0;
  auto img = parse_bzimage(b.build());
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_EQ(img->setup_bytes, 5u * 512);
}

struct BadHeader {
  const char* name;
  std::function<void(BzImageBuilder&)> field;           // change a header field, or
  std::function<void(std::vector<std::uint8_t>&)> raw;  // corrupt the built bytes
  const char* message;
};

TEST_F(LinuxBootTest, RejectsBadHeadersWithOneClearLine) {
  using File = std::vector<std::uint8_t>;
  const std::vector<BadHeader> cases = {
      {"boot flag", {}, [](File& f) { f[bz::kBootFlag] = 0; }, "no 0xaa55 boot signature"},
      {"HdrS", {}, [](File& f) { f[bz::kHeaderMagicOff] = 'X'; }, "no 'HdrS' setup header"},
      {"truncated", {}, [](File& f) { f.resize(0x100); }, "too small for a bzImage"},
      {"old protocol",
       [](BzImageBuilder& b) { b.version = 0x0206; },
       {},
       "boot protocol 2.06 is too old"},
      {"not high", [](BzImageBuilder& b) { b.loadflags = 0; }, {}, "LOADED_HIGH clear"},
      {"no 64-bit", [](BzImageBuilder& b) { b.xloadflags = 0x2; }, {}, "no 64-bit entry point"},
      {"alignment",
       [](BzImageBuilder& b) { b.kernel_alignment = 0x300000; },
       {},
       "not a power of two"},
      {"init_size", [](BzImageBuilder& b) { b.init_size = 0; }, {}, "init_size is 0"},
      {"short header",
       [](BzImageBuilder& b) { b.jump = 0x20; },
       {},
       "before the protocol 2.12 fields"},
      {"no kernel", [](BzImageBuilder& b) { b.payload = 0; }, {}, "leaves no kernel"},
  };
  for (const auto& c : cases) {
    BzImageBuilder b;
    if (c.field) c.field(b);
    File f = b.build();
    if (c.raw) c.raw(f);
    auto img = parse_bzimage(f);
    ASSERT_FALSE(img.ok()) << c.name;
    const std::string& m = img.error().message;
    EXPECT_NE(m.find(c.message), std::string::npos) << c.name << ": " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << c.name;
  }
}

TEST_F(LinuxBootTest, LoadsKernelAtPreferredAddressWithBootParams) {
  make_ram(256 * kMiB);
  auto file = BzImageBuilder{}.build();
  auto img = parse_bzimage(file).value();
  std::vector<std::uint8_t> initrd(3 * 4096 + 5, 0x5A);
  auto l = load_linux(file, img, initrd, *ram_,
                      {.cmdline = "console=ttyS0 panic=-1", .acpi_rsdp = kAcpiGpa});
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  EXPECT_EQ(l->kernel_addr, 0x1000000u);
  EXPECT_EQ(l->entry, 0x1000200u);
  EXPECT_EQ(l->kernel_end, 0x1000000u + 0x400000u);
  // The protected-mode kernel (the file after the setup sectors) is there.
  auto k = ram_->at(Gpa{l->kernel_addr}, img.kernel_bytes).value();
  EXPECT_TRUE(std::equal(k.begin(), k.end(), file.begin() + 5 * 512));
  // Initrd: page aligned, as high as low RAM allows, contents copied.
  EXPECT_EQ(l->initrd_addr % 4096, 0u);
  EXPECT_LE(l->initrd_addr + initrd.size(), 256 * kMiB);
  EXPECT_GT(l->initrd_addr + initrd.size() + 4096, 256 * kMiB);
  EXPECT_EQ(ram_->read_value<std::uint8_t>(Gpa{l->initrd_addr + initrd.size() - 1}).value(), 0x5A);
  // boot_params.
  EXPECT_EQ(zp<std::uint16_t>(bz::kBootFlag), 0xAA55);
  EXPECT_EQ(zp<std::uint32_t>(bz::kHeaderMagicOff), bz::kHeaderMagic);
  EXPECT_EQ(zp<std::uint8_t>(bz::kTypeOfLoader), 0xFF);
  EXPECT_EQ(zp<std::uint32_t>(bz::kCmdLinePtr), kCmdlineGpa);
  EXPECT_EQ(zp<std::uint32_t>(bz::kRamdiskImage), l->initrd_addr);
  EXPECT_EQ(zp<std::uint32_t>(bz::kRamdiskSize), initrd.size());
  EXPECT_EQ(zp<std::uint64_t>(bz::kAcpiRsdpAddr), kAcpiGpa);
  auto cmd = ram_->at(Gpa{kCmdlineGpa}, 23).value();
  EXPECT_EQ(std::string(cmd.begin(), cmd.end()), std::string("console=ttyS0 panic=-1\0", 23));
  // e820: low RAM, ACPI, RAM from 1 MiB.
  ASSERT_EQ(zp<std::uint8_t>(bz::kE820Entries), 3);
  auto entry = [&](int i) {
    return E820Entry{zp<std::uint64_t>(bz::kE820Table + 20 * i),
                     zp<std::uint64_t>(bz::kE820Table + 20 * i + 8),
                     static_cast<E820Type>(zp<std::uint32_t>(bz::kE820Table + 20 * i + 16))};
  };
  EXPECT_EQ(entry(0).addr, 0u);
  EXPECT_EQ(entry(0).size, kAcpiGpa);
  EXPECT_EQ(entry(1).type, E820Type::kAcpi);
  EXPECT_EQ(entry(2).addr, kBootAreaEnd);
  EXPECT_EQ(entry(2).size, 255 * kMiB);
  EXPECT_EQ(entry(2).type, E820Type::kRam);
}

TEST_F(LinuxBootTest, EntryStateIs64BitWithBootParamsInRsi) {
  make_ram(64 * kMiB);
  auto boot = build_boot_area(*ram_, {.cpu_count = 2}).value();
  LinuxLayout l{.entry = 0x1000200, .boot_params = kBootParamsGpa};
  EntryState st = linux_entry_state(boot, l);
  EXPECT_EQ(st.rip, 0x1000200u);
  EXPECT_EQ(st.rsi, kBootParamsGpa);
  EXPECT_EQ(st.cs.l, 1);
  EXPECT_EQ(st.cs.selector, 0x10) << "__BOOT_CS";
  EXPECT_EQ(st.ss.selector, 0x18) << "__BOOT_DS";
  ASSERT_TRUE(write_linux_gdt(*ram_).ok());
  // The GDT agrees: 0x10 is 64-bit code (L=1, type 0xB), 0x18 flat data.
  const auto code = ram_->read_value<std::uint64_t>(Gpa{kGdtGpa + 0x10}).value();
  const auto data = ram_->read_value<std::uint64_t>(Gpa{kGdtGpa + 0x18}).value();
  EXPECT_EQ((code >> 53) & 1, 1u);
  EXPECT_EQ((code >> 40) & 0xF, 0xBu);
  EXPECT_EQ((data >> 40) & 0xF, 0x3u);
  EXPECT_NE(st.efer & kEferLma, 0u);
  EXPECT_NE(st.cr0 & kCr0Pg, 0u);
  EXPECT_EQ(st.rflags & (1u << 9), 0u) << "interrupts must be off at entry";
}

TEST_F(LinuxBootTest, InitrdStaysBelowInitrdAddrMax) {
  make_ram(1 * kGiB);
  BzImageBuilder b;
  b.initrd_addr_max = 0x37FFFFFF;
  auto img = parse_bzimage(b.build()).value();
  auto l = plan_linux(img, map_, {.initrd_size = 10 * kMiB + 1});
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  EXPECT_LE(l->initrd_addr + l->initrd_size, 0x38000000u);
  EXPECT_EQ(l->initrd_addr, (0x38000000u - (10 * kMiB + 1)) / 4096 * 4096);
}

TEST_F(LinuxBootTest, RelocatesWhenThePreferredAddressDoesNotFit) {
  make_ram(16 * kMiB);
  BzImageBuilder b;
  b.pref_address = 0x1000000;  // 16 MiB: past the end of RAM
  auto l = plan_linux(parse_bzimage(b.build()).value(), map_, {});
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  EXPECT_EQ(l->kernel_addr, 2 * kMiB);  // 1 MiB rounded up to the 2 MiB alignment
  b.relocatable = 0;
  auto fixed = plan_linux(parse_bzimage(b.build()).value(), map_, {});
  ASSERT_FALSE(fixed.ok());
  EXPECT_NE(fixed.error().message.find("use a larger --mem"), std::string::npos);
}

TEST_F(LinuxBootTest, RejectsWhatDoesNotFit) {
  make_ram(32 * kMiB);
  auto img = parse_bzimage(BzImageBuilder{}.build()).value();
  auto big_initrd = plan_linux(img, map_, {.initrd_size = 16 * kMiB});
  ASSERT_FALSE(big_initrd.ok());
  EXPECT_NE(big_initrd.error().message.find("initrd of 16384 KiB does not fit"), std::string::npos)
      << big_initrd.error().message;
  std::string long_cmdline(2048, 'x');
  auto cmd = plan_linux(img, map_, {.cmdline = long_cmdline});
  ASSERT_FALSE(cmd.ok());
  EXPECT_NE(cmd.error().message.find("accepts at most 2047"), std::string::npos);
  auto nul = plan_linux(img, map_, {.cmdline = std::string_view("a\0b", 3)});
  EXPECT_FALSE(nul.ok());
}

// Random corruption of the header must give an error or a valid load, never
// a crash or an out-of-bounds access (ASan/UBSan builds check the latter).
TEST_F(LinuxBootTest, MutatedHeadersNeverCrash) {
  make_ram(64 * kMiB);
  const auto seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  const auto good = BzImageBuilder{}.build();
  int loaded = 0;
  for (int i = 0; i < 3000; ++i) {
    auto f = good;
    const int flips = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < flips; ++k) f[0x1F0 + rng() % 0x80] = static_cast<std::uint8_t>(rng());
    if (rng() % 8 == 0) f.resize(rng() % f.size());
    auto img = parse_bzimage(f);
    if (!img.ok()) continue;
    auto l = load_linux(f, *img, {}, *ram_, {.cmdline = "x"});
    loaded += l.ok();
  }
  EXPECT_GT(loaded, 0) << "no mutation kept a loadable image: the test exercised nothing";
}

// ssi's platform has nothing Linux can measure the TSC with: ssi names the
// rate itself, unless the user did.
TEST(LinuxCommandLine, AppendsTheTscRateUnlessTheUserGaveOne) {
  EXPECT_EQ(linux_command_line("console=ttyS0", 2094446), "console=ttyS0 tsc_early_khz=2094446");
  EXPECT_EQ(linux_command_line("", 1000), "tsc_early_khz=1000");
  EXPECT_EQ(linux_command_line("console=ttyS0", 0), "console=ttyS0");  // rate unknown
  EXPECT_EQ(linux_command_line("tsc_early_khz=5 quiet", 7), "tsc_early_khz=5 quiet");
  EXPECT_EQ(linux_command_line("quiet tsc_early_khz=5", 7), "quiet tsc_early_khz=5");
  // Only a parameter of that name counts.
  EXPECT_EQ(linux_command_line("xtsc_early_khz=5", 7), "xtsc_early_khz=5 tsc_early_khz=7");
}

}  // namespace
}  // namespace ssi::machine
