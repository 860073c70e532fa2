#include "ssi/multiboot.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <random>
#include <string>

#include "ssi/e820.hpp"
#include "ssi/kvm_entry.hpp"
#include "ssi/lazy_ram.hpp"

namespace ssi::machine {
namespace {

using File = std::vector<std::uint8_t>;
namespace mb = multiboot;

template <typename T>
void put(File& f, std::size_t off, T v) {
  if (f.size() < off + sizeof(T)) f.resize(off + sizeof(T));
  std::memcpy(f.data() + off, &v, sizeof(T));
}

void put_header(File& f, std::size_t off, std::uint32_t flags) {
  put<std::uint32_t>(f, off, mb::kHeaderMagic);
  put<std::uint32_t>(f, off + 4, flags);
  put<std::uint32_t>(f, off + 8, 0u - mb::kHeaderMagic - flags);
}

// An ELF32 kernel: one PT_LOAD of `code` bytes (file) + `bss` bytes at
// paddr 1 MiB (vaddr `vbase`), the multiboot header at the segment start.
File elf32_kernel(std::uint32_t vbase = 0x100000, std::size_t code = 256, std::size_t bss = 4096) {
  File f(0x1000 + code, 0);
  f[0] = 0x7F, f[1] = 'E', f[2] = 'L', f[3] = 'F', f[4] = 1, f[5] = 1, f[6] = 1;
  put<std::uint16_t>(f, 16, 2);             // ET_EXEC
  put<std::uint16_t>(f, 18, 3);             // EM_386
  put<std::uint32_t>(f, 24, vbase + 0x40);  // entry (virtual)
  put<std::uint32_t>(f, 28, 52);            // phoff
  put<std::uint16_t>(f, 42, 32);
  put<std::uint16_t>(f, 44, 1);
  put<std::uint32_t>(f, 52, 1);  // PT_LOAD
  put<std::uint32_t>(f, 56, 0x1000);
  put<std::uint32_t>(f, 60, vbase);
  put<std::uint32_t>(f, 64, 0x100000);
  put<std::uint32_t>(f, 68, static_cast<std::uint32_t>(code));
  put<std::uint32_t>(f, 72, static_cast<std::uint32_t>(code + bss));
  put_header(f, 0x1000, mb::kFlagPageAlign | mb::kFlagMemInfo);
  for (std::size_t i = 0x100C; i < f.size(); ++i) f[i] = 0x90;
  return f;
}

// A flat binary using the a.out kludge: loaded at 2 MiB, header at file offset 16.
File aout_kernel() {
  File f(64, 0xF4);
  const std::uint32_t load = 0x200000;
  put_header(f, 16, mb::kFlagMemInfo | mb::kFlagAout);
  put<std::uint32_t>(f, 28, load + 16);      // header_addr
  put<std::uint32_t>(f, 32, load);           // load_addr
  put<std::uint32_t>(f, 36, 0);              // load_end_addr: whole file
  put<std::uint32_t>(f, 40, load + 0x2000);  // bss_end_addr
  put<std::uint32_t>(f, 44, load + 48);      // entry_addr
  return f;
}

class MultibootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    map_ = MemoryMap::pc(64 * kMiB).value();
    backing_.emplace(map_.ram_bytes());
    ASSERT_EQ(backing_->span().size(), map_.ram_bytes());
    ram_.emplace(GuestRam::make(map_, backing_->span()).value());
  }
  template <typename T>
  T at(std::uint64_t gpa) {
    return ram_->read_value<T>(Gpa{gpa}).value();
  }
  std::string str(std::uint64_t gpa) {
    std::string s;
    for (char c; (c = static_cast<char>(at<std::uint8_t>(gpa))) != 0; ++gpa) s += c;
    return s;
  }

  MemoryMap map_;
  std::optional<ssi::testing::LazyRam> backing_;
  std::optional<GuestRam> ram_;
};

TEST_F(MultibootTest, FindsTheHeaderOnlyWithAValidChecksumInTheFirst8KiB) {
  File f(0x3000, 0);
  EXPECT_FALSE(find_multiboot_header(f));
  put_header(f, 0x2000, 0);  // past 8 KiB
  EXPECT_FALSE(find_multiboot_header(f));
  put_header(f, 0x1FF4, 0);  // the last slot that fits in 8 KiB
  EXPECT_EQ(find_multiboot_header(f), 0x1FF4u);
  put<std::uint32_t>(f, 0x1FF4 + 8, 0);  // bad checksum
  EXPECT_FALSE(find_multiboot_header(f));
}

TEST_F(MultibootTest, LoadsAnElf32KernelAndTranslatesAVirtualEntry) {
  File f = elf32_kernel(0xC0100000);
  auto img = parse_multiboot(f, map_);
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_FALSE(img->aout_kludge);
  EXPECT_EQ(img->entry, 0x100040u);
  EXPECT_EQ(img->end, 0x100000u + 256 + 4096);
  auto l = load_multiboot(f, *img, *ram_, {.cmdline = "hello world"});
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  EXPECT_EQ(at<std::uint32_t>(0x100000), mb::kHeaderMagic);
  EXPECT_EQ(at<std::uint8_t>(0x100000 + 256), 0) << ".bss is zeroed";
}

TEST_F(MultibootTest, LoadsAnAoutKludgeKernel) {
  File f = aout_kernel();
  auto img = parse_multiboot(f, map_);
  ASSERT_TRUE(img.ok()) << img.error().to_string();
  EXPECT_TRUE(img->aout_kludge);
  EXPECT_EQ(img->entry, 0x200030u);
  ASSERT_EQ(img->segments.size(), 1u);
  EXPECT_EQ(img->segments[0].gpa, 0x200000u);
  EXPECT_EQ(img->segments[0].file_size, 64u);
  EXPECT_EQ(img->segments[0].mem_size, 0x2000u);
  ASSERT_TRUE(load_multiboot(f, *img, *ram_, {}).ok());
  EXPECT_EQ(at<std::uint32_t>(0x200010), mb::kHeaderMagic);
}

TEST_F(MultibootTest, InfoBlockDescribesMemoryCmdlineModuleAndMmap) {
  File f = elf32_kernel();
  auto img = parse_multiboot(f, map_).value();
  File module(5000, 0xAB);
  auto l = load_multiboot(
      f, img, *ram_, {.cmdline = "cpus=2 mem=64", .module = module, .module_string = "initrd.img"});
  ASSERT_TRUE(l.ok()) << l.error().to_string();
  const std::uint32_t info = l->info;
  const std::uint32_t flags = at<std::uint32_t>(info);
  for (std::uint32_t bit :
       {mb::kInfoMem, mb::kInfoCmdline, mb::kInfoMods, mb::kInfoMmap, mb::kInfoLoaderName}) {
    EXPECT_NE(flags & bit, 0u) << "flag " << bit;
  }
  EXPECT_EQ(at<std::uint32_t>(info + 4), kAcpiGpa / 1024);            // mem_lower (KiB)
  EXPECT_EQ(at<std::uint32_t>(info + 8), (64 * kMiB - kMiB) / 1024);  // mem_upper (KiB)
  EXPECT_EQ(str(at<std::uint32_t>(info + 16)), "cpus=2 mem=64");
  EXPECT_EQ(str(at<std::uint32_t>(info + 64)), "ssi");
  // One module, page aligned after the kernel's .bss, with its string.
  ASSERT_EQ(at<std::uint32_t>(info + 20), 1u);
  const std::uint32_t mod = at<std::uint32_t>(info + 24);
  EXPECT_EQ(at<std::uint32_t>(mod), 0x102000u);
  EXPECT_EQ(at<std::uint32_t>(mod + 4), 0x102000u + 5000);
  EXPECT_EQ(str(at<std::uint32_t>(mod + 8)), "initrd.img");
  EXPECT_EQ(at<std::uint8_t>(0x102000 + 4999), 0xAB);
  // mmap entries: size field 20, the e820 map ssi gives Linux too.
  const auto e820 = e820_map(map_);
  ASSERT_EQ(at<std::uint32_t>(info + 44), 24 * e820.size());
  const std::uint32_t mmap = at<std::uint32_t>(info + 48);
  for (std::size_t i = 0; i < e820.size(); ++i) {
    EXPECT_EQ(at<std::uint32_t>(mmap + 24 * i), 20u);
    EXPECT_EQ(at<std::uint64_t>(mmap + 24 * i + 4), e820[i].addr);
    EXPECT_EQ(at<std::uint64_t>(mmap + 24 * i + 12), e820[i].size);
    EXPECT_EQ(at<std::uint32_t>(mmap + 24 * i + 20), static_cast<std::uint32_t>(e820[i].type));
  }
}

TEST_F(MultibootTest, EntersInFlat32BitProtectedModeWithMagicAndInfo) {
  File f = elf32_kernel();
  auto l = load_multiboot(f, parse_multiboot(f, map_).value(), *ram_, {}).value();
  EntryState st = multiboot_entry_state(l);
  kvm_regs r = to_kvm_regs(st);
  EXPECT_EQ(r.rax, mb::kBootMagic);
  EXPECT_EQ(r.rbx, kBootParamsGpa);
  EXPECT_EQ(r.rip, 0x100040u);
  EXPECT_EQ(r.rflags & (1u << 9), 0u) << "IF clear";
  kvm_sregs s = to_kvm_sregs(st, kvm_sregs{});
  EXPECT_EQ(s.cr0 & (kCr0Pe | kCr0Pg), kCr0Pe) << "protected mode, paging off";
  EXPECT_EQ(s.efer, 0u);
  EXPECT_EQ(s.cs.db, 1);
  EXPECT_EQ(s.cs.l, 0);
  EXPECT_EQ(s.cs.limit, 0xFFFFFFFFu);
  EXPECT_EQ(s.cs.base, 0u);
  EXPECT_EQ(s.ss.db, 1);
  // The GDT in guest RAM agrees with the hidden segment state.
  EXPECT_EQ(at<std::uint64_t>(kGdtGpa + mb::kCodeSelector), 0x00CF9B000000FFFFull);
  EXPECT_EQ(at<std::uint64_t>(kGdtGpa + mb::kDataSelector), 0x00CF93000000FFFFull);
}

TEST_F(MultibootTest, RejectsBadKernelsWithOneClearLine) {
  struct Case {
    const char* name;
    File file;
    const char* message;
  };
  File elf64 = elf32_kernel();
  elf64[4] = 2;
  File unsupported(64, 0);
  put_header(unsupported, 0, 1u << 3);
  File low_aout = aout_kernel();
  put<std::uint32_t>(low_aout, 28, 0x1000 + 16);
  put<std::uint32_t>(low_aout, 32, 0x1000);
  put<std::uint32_t>(low_aout, 40, 0);
  put<std::uint32_t>(low_aout, 44, 0x1000);
  File bad_entry = aout_kernel();
  put<std::uint32_t>(bad_entry, 44, 0x900000);
  File big = elf32_kernel(0x100000, 256, 128 * kMiB);
  File truncated = elf32_kernel();
  put<std::uint32_t>(truncated, 68, 0x100000);  // p_filesz past the end of the file
  put<std::uint32_t>(truncated, 72, 0x100000);
  const std::vector<Case> cases = {
      {"none", File(100, 0), "no multiboot header"},
      {"elf64", elf64, "is ELF64"},
      {"flags", unsupported, "requires features ssi lacks"},
      {"below 1 MiB", low_aout, "below 1 MiB"},
      {"entry", bad_entry, "outside the loaded image"},
      {"too big", big, "not inside guest RAM"},
      {"truncated", truncated, "past the end of the file"},
  };
  for (const auto& c : cases) {
    auto img = parse_multiboot(c.file, map_);
    ASSERT_FALSE(img.ok()) << c.name;
    EXPECT_NE(img.error().message.find(c.message), std::string::npos)
        << c.name << ": " << img.error().message;
    EXPECT_EQ(img.error().message.find('\n'), std::string::npos);
  }
}

TEST_F(MultibootTest, MutatedKernelsNeverCrash) {
  const auto seed = std::random_device{}();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937 rng(seed);
  int loaded = 0;
  for (int i = 0; i < 2000; ++i) {
    File f = i % 2 ? elf32_kernel() : aout_kernel();
    const std::size_t span = i % 2 ? 0x100 : f.size();  // ELF: headers; a.out: everything
    for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k) {
      f[rng() % span] = static_cast<std::uint8_t>(rng());
    }
    auto img = parse_multiboot(f, map_);
    if (!img.ok()) continue;
    loaded += load_multiboot(f, *img, *ram_, {}).ok();
  }
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace ssi::machine
