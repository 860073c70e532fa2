#include "ssi/boot.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <optional>
#include <random>
#include <set>
#include <vector>

#include "ssi/kvm_entry.hpp"
#include "ssi/lazy_ram.hpp"

namespace ssi::machine {
namespace {

// Decodes a 4-level page walk the way the CPU would, for addresses mapped
// with 2 MiB pages. Returns the physical address and the AND of the U bits
// (a user access needs U at every level), or nullopt if not present.
struct Walk {
  std::uint64_t pa;
  bool user;
  bool writable;
  bool uncached;
  bool accessed_and_dirty;  // A at every level, D on the leaf: the walker never writes
};

std::optional<Walk> walk(const GuestRam& ram, std::uint64_t cr3, std::uint64_t va) {
  std::uint64_t pml4e = ram.read_value<std::uint64_t>(Gpa{cr3 + ((va >> 39) & 511) * 8}).value();
  if (!(pml4e & kPtePresent)) return std::nullopt;
  std::uint64_t pdpte =
      ram.read_value<std::uint64_t>(Gpa{(pml4e & kPteAddrMask) + ((va >> 30) & 511) * 8}).value();
  if (!(pdpte & kPtePresent) || (pdpte & kPteHuge)) return std::nullopt;  // no 1 GiB pages
  std::uint64_t pde =
      ram.read_value<std::uint64_t>(Gpa{(pdpte & kPteAddrMask) + ((va >> 21) & 511) * 8}).value();
  if (!(pde & kPtePresent) || !(pde & kPteHuge)) return std::nullopt;
  std::uint64_t pa = (pde & kPteAddrMask & ~((2 * kMiB) - 1)) | (va & (2 * kMiB - 1));
  bool user = (pml4e & pdpte & pde & kPteUser) != 0;
  bool writable = (pml4e & pdpte & pde & kPteWrite) != 0;
  bool ad = (pml4e & pdpte & pde & kPteAccessed) != 0 && (pde & kPteDirty) != 0;
  return Walk{pa, user, writable, (pde & kPtePcd) != 0, ad};
}

using ssi::testing::LazyRam;

class BootTest : public ::testing::Test {
 protected:
  void build(std::uint64_t ram_bytes, BootConfig config) {
    map_ = MemoryMap::pc(ram_bytes).value();
    backing_.emplace(map_.ram_bytes());
    ASSERT_EQ(backing_->span().size(), map_.ram_bytes()) << "mmap failed";
    ram_.emplace(GuestRam::make(map_, backing_->span()).value());
    auto l = build_boot_area(*ram_, config);
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    layout_ = *l;
  }
  std::uint64_t gdt_entry(unsigned selector) {
    return ram_->read_value<std::uint64_t>(Gpa{kGdtGpa + (selector & ~7u)}).value();
  }

  MemoryMap map_ = MemoryMap::pc(kMinRam).value();
  std::optional<LazyRam> backing_;
  std::optional<GuestRam> ram_;
  BootLayout layout_;
};

TEST_F(BootTest, BothPageTablesIdentityMapFourGiB) {
  build(64 * kMiB, {.cpu_count = 2, .kernel_entry = 0x100000});
  EXPECT_EQ(layout_.map_end, 4 * kGiB);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    std::uint64_t va = rng() % layout_.map_end;
    for (std::uint64_t cr3 : {layout_.kernel_cr3, layout_.user_cr3}) {
      auto w = walk(*ram_, cr3, va);
      ASSERT_TRUE(w.has_value()) << std::hex << "va " << va << " seed 42";
      EXPECT_EQ(w->pa, va);
      EXPECT_TRUE(w->writable);
      EXPECT_TRUE(w->accessed_and_dirty) << std::hex << "va " << va;
    }
  }
  EXPECT_FALSE(walk(*ram_, layout_.kernel_cr3, 4 * kGiB).has_value());
}

TEST_F(BootTest, OnlyTheUserVariantSetsTheUBitAtEveryLevel) {
  build(64 * kMiB, {.cpu_count = 1, .kernel_entry = 0x100000});
  for (std::uint64_t va : {std::uint64_t{0}, std::uint64_t{0x100000}, 63 * kMiB, 3 * kGiB + 5, kLapicBase}) {
    EXPECT_FALSE(walk(*ram_, layout_.kernel_cr3, va)->user) << std::hex << va;
    EXPECT_TRUE(walk(*ram_, layout_.user_cr3, va)->user) << std::hex << va;
  }
}

TEST_F(BootTest, MmioHoleIsUncachedAndRamIsNot) {
  build(64 * kMiB, {.kernel_entry = 0x100000});
  EXPECT_TRUE(walk(*ram_, layout_.kernel_cr3, kLapicBase)->uncached);
  EXPECT_TRUE(walk(*ram_, layout_.kernel_cr3, kPciHoleStart)->uncached);
  EXPECT_FALSE(walk(*ram_, layout_.kernel_cr3, 0x200000)->uncached);
}

TEST_F(BootTest, HighRamAboveFourGiBIsMappedToo) {
  build(4 * kGiB, {.kernel_entry = 0x100000});
  EXPECT_EQ(layout_.map_end, 5 * kGiB);
  auto w = walk(*ram_, layout_.user_cr3, 5 * kGiB - 8);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->pa, 5 * kGiB - 8);
}

TEST_F(BootTest, GdtHasKernelAndUserSegmentsAndOneBusyTssPerCpu) {
  build(16 * kMiB, {.cpu_count = 3, .kernel_entry = 0x100000});
  auto dpl = [](std::uint64_t d) { return (d >> 45) & 3; };
  auto is_long = [](std::uint64_t d) { return (d >> 53) & 1; };
  auto is_code = [](std::uint64_t d) { return (d >> 43) & 1; };
  auto present = [](std::uint64_t d) { return (d >> 47) & 1; };
  std::uint64_t kc = gdt_entry(SSI_SEL_KERNEL_CODE), kd = gdt_entry(SSI_SEL_KERNEL_DATA);
  std::uint64_t uc = gdt_entry(SSI_SEL_USER_CODE), ud = gdt_entry(SSI_SEL_USER_DATA);
  EXPECT_TRUE(present(kc) && is_code(kc) && is_long(kc));
  EXPECT_EQ(dpl(kc), 0u);
  EXPECT_TRUE(present(kd) && !is_code(kd));
  EXPECT_TRUE(present(uc) && is_code(uc) && is_long(uc));
  EXPECT_EQ(dpl(uc), 3u);
  EXPECT_TRUE(present(ud) && !is_code(ud));
  EXPECT_EQ(dpl(ud), 3u);
  EXPECT_EQ(SSI_SEL_USER_CODE, 0x33);
  EXPECT_EQ(SSI_SEL_USER_DATA, 0x2b);
  for (unsigned cpu = 0; cpu < 3; ++cpu) {
    unsigned sel = SSI_SEL_TSS0 + 16 * cpu;
    std::uint64_t lo = gdt_entry(sel), hi = gdt_entry(sel + 8);
    std::uint64_t base = ((lo >> 16) & 0xFFFFFF) | (((lo >> 56) & 0xFF) << 24) | (hi << 32);
    EXPECT_EQ(base, kTssGpa + cpu * kTssStride);
    EXPECT_EQ((lo >> 40) & 0xF, 0xBu);  // busy 64-bit TSS
    EXPECT_EQ(lo & 0xFFFF, 0x67u);
    EXPECT_EQ(ram_->read_value<std::uint16_t>(Gpa{base + 0x66}).value(), 0x68u);  // no I/O bitmap
  }
  auto ap = layout_.ap_state(2, 8);
  ASSERT_TRUE(ap.ok());
  EXPECT_GE(ap->gdt.limit + 1u, SSI_SEL_TSS0 + 16u * 3);
}

TEST_F(BootTest, BootInfoDescribesTheMachine) {
  std::vector<std::uint32_t> nodes{0, 0, 1, 1};
  std::vector<std::uint64_t> node_ram{0, 16 * kMiB};
  build(32 * kMiB, {.cpu_count = 4, .node_count = 2, .cpu_node = nodes,
                    .node_ram_start = node_ram, .kernel_entry = 0x100000, .kernel_end = 0x180000});
  auto info = ram_->read_value<ssi_boot_info>(Gpa{kBootInfoGpa}).value();
  EXPECT_EQ(info.magic, SSI_BOOT_MAGIC);
  EXPECT_EQ(info.version, SSI_BOOT_VERSION);
  EXPECT_EQ(info.cpu_count, 4u);
  EXPECT_EQ(info.node_count, 2u);
  EXPECT_EQ(info.mem_bytes, 32 * kMiB);
  EXPECT_EQ(info.user_cr3, layout_.user_cr3);
  EXPECT_EQ(info.kernel_cr3, layout_.kernel_cr3);
  EXPECT_EQ(info.lapic_base, kLapicBase);
  EXPECT_EQ(info.trampoline_gpa, kTrampolineGpa);
  EXPECT_EQ(info.kernel_end, 0x180000u);
  EXPECT_EQ(info.cpu_node[1], 0u);
  EXPECT_EQ(info.cpu_node[2], 1u);
  EXPECT_EQ(info.cpu_node[3], 1u);
  EXPECT_EQ(info.node_ram_start[1], 16 * kMiB);
}

TEST_F(BootTest, BspEntersLongModeAtTheEntryWithBootInfoInRdi) {
  build(16 * kMiB, {.cpu_count = 2, .kernel_entry = 0x100040});
  EntryState st = layout_.bsp_state();
  EXPECT_EQ(st.rip, 0x100040u);
  EXPECT_EQ(st.rdi, kBootInfoGpa);
  EXPECT_EQ(st.rsi, 0u);
  EXPECT_EQ(st.rsp, kBootStackTop);
  EXPECT_TRUE(st.cr0 & kCr0Pg);
  EXPECT_TRUE(st.cr0 & kCr0Pe);
  EXPECT_TRUE(st.cr4 & kCr4Pae);
  EXPECT_EQ(st.efer & (kEferLme | kEferLma), kEferLme | kEferLma);
  EXPECT_EQ(st.cr3, layout_.kernel_cr3);
  EXPECT_EQ(st.cs.selector, SSI_SEL_KERNEL_CODE);
  EXPECT_EQ(st.cs.l, 1);
  EXPECT_EQ(st.cs.db, 0);  // L=1 with D=1 is reserved
  EXPECT_EQ(st.ss.selector, SSI_SEL_KERNEL_DATA);
  EXPECT_EQ(st.tr.selector, SSI_SEL_TSS0);
  EXPECT_EQ(st.rflags & (1u << 9), 0u);  // interrupts off

  kvm_sregs base{};
  base.apic_base = 0xFEE00900;
  kvm_sregs s = to_kvm_sregs(st, base);
  EXPECT_EQ(s.apic_base, 0xFEE00900u);  // kept from the vCPU
  EXPECT_EQ(s.cs.selector, SSI_SEL_KERNEL_CODE);
  EXPECT_EQ(s.cs.l, 1);
  EXPECT_EQ(s.tr.type, 0xB);
  EXPECT_EQ(s.ldt.unusable, 1);
  EXPECT_EQ(s.efer, st.efer);
  EXPECT_EQ(to_kvm_regs(st).rip, 0x100040u);
}

TEST_F(BootTest, EachNodeHasItsOwnCopyOfThePageTables) {
  const std::uint32_t cpu_node[] = {0, 1, 1, 2};
  const std::uint64_t node_ram[] = {0, 16 * kMiB, 32 * kMiB};
  build(64 * kMiB, {.cpu_count = 4, .node_count = 3, .cpu_node = cpu_node,
                    .node_ram_start = node_ram, .kernel_entry = 0x100000});
  ASSERT_EQ(layout_.node_kernel_cr3.size(), 3u);
  auto info = ram_->read_value<ssi_boot_info>(Gpa{kBootInfoGpa}).value();
  std::set<std::uint64_t> roots;
  for (unsigned n = 0; n < 3; ++n) {
    EXPECT_EQ(info.node_kernel_cr3[n], layout_.node_kernel_cr3[n]);
    roots.insert(info.node_kernel_cr3[n]);
    roots.insert(info.node_user_cr3[n]);
    std::mt19937_64 rng(n);
    for (int i = 0; i < 200; ++i) {
      std::uint64_t va = rng() % layout_.map_end;
      auto k = walk(*ram_, info.node_kernel_cr3[n], va);
      auto u = walk(*ram_, info.node_user_cr3[n], va);
      ASSERT_TRUE(k && u) << std::hex << va;
      EXPECT_EQ(k->pa, va);
      EXPECT_EQ(u->pa, va);
      EXPECT_FALSE(k->user);
      EXPECT_TRUE(u->user);
    }
  }
  EXPECT_EQ(roots.size(), 6u) << "six distinct roots, two per node";
  EXPECT_EQ(info.node_kernel_cr3[3], 0u);
  // A CPU starts on its node's copy; read back from RAM by another node too.
  EXPECT_EQ(layout_.bsp_state().cr3, info.node_kernel_cr3[0]);
  EXPECT_EQ(layout_.ap_state(3, 8)->cr3, info.node_kernel_cr3[2]);
  auto read = read_boot_layout(*ram_).value();
  EXPECT_EQ(read.ap_state(1, 8)->cr3, info.node_kernel_cr3[1]);
  EXPECT_EQ(read.ap_state(2, 8)->cr3, info.node_kernel_cr3[1]);
}

TEST_F(BootTest, OneNodeSharesOneCopy) {
  build(64 * kMiB, {.cpu_count = 2, .kernel_entry = 0x100000});
  EXPECT_TRUE(layout_.node_kernel_cr3.empty());
  auto info = ram_->read_value<ssi_boot_info>(Gpa{kBootInfoGpa}).value();
  EXPECT_EQ(info.node_user_cr3[0], 0u);
  EXPECT_EQ(layout_.ap_state(1, 8)->cr3, layout_.kernel_cr3);
}

TEST_F(BootTest, ApStartsAtSipiPageWithItsOwnTss) {
  build(16 * kMiB, {.cpu_count = 4, .kernel_entry = 0x100000});
  auto st = layout_.ap_state(3, 0x08);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->rip, 0x8000u);
  EXPECT_EQ(st->rsi, 3u);
  EXPECT_EQ(st->tr.selector, SSI_SEL_TSS0 + 16 * 3);
  EXPECT_EQ(st->tr.base, kTssGpa + 3 * kTssStride);
  EXPECT_FALSE(layout_.ap_state(0, 8).ok());
  EXPECT_FALSE(layout_.ap_state(4, 8).ok());
  EXPECT_FALSE(layout_.ap_state(1, 0).ok());
}

TEST(BootBuild, RejectsBadCpuAndNodeConfigs) {
  auto map = MemoryMap::pc(kMinRam).value();
  std::vector<std::uint8_t> backing(map.ram_bytes());
  auto ram = GuestRam::make(map, backing).value();
  EXPECT_FALSE(build_boot_area(ram, {.cpu_count = 0}).ok());
  EXPECT_FALSE(build_boot_area(ram, {.cpu_count = kMaxVcpus + 1}).ok());
  std::vector<std::uint32_t> nodes{0, 2};
  EXPECT_FALSE(build_boot_area(ram, {.cpu_count = 2, .node_count = 2, .cpu_node = nodes}).ok());
  std::vector<std::uint32_t> short_map{0};
  EXPECT_FALSE(build_boot_area(ram, {.cpu_count = 2, .cpu_node = short_map}).ok());
}

}  // namespace
}  // namespace ssi::machine
