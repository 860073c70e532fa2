// Boot builder for ELF test kernels: fills the boot area of guest RAM with
// identity page tables (kernel and user/U-bit variants), a GDT with kernel and
// user segments plus one TSS per CPU, and the boot-info block; and computes
// the register state that enters 64-bit mode at the kernel entry. Plain data
// only (no KVM types), so it is unit-tested by decoding what it wrote; the
// vCPU layer converts EntryState into KVM regs/sregs.
// The guest-side contract is documented in ssi/boot_info.h.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "ssi/boot_info.h"
#include "ssi/guest_ram.hpp"

namespace ssi::machine {

// Boot-area layout (all below kBootAreaEnd = 1 MiB).
inline constexpr std::uint64_t kGdtGpa = 0x1000;
inline constexpr std::uint64_t kTssGpa = 0x2000;
inline constexpr std::uint32_t kTssStride = 0x80;  // >= 0x68 bytes, keeps TSSes aligned
inline constexpr std::uint64_t kBootInfoGpa = 0x5000;
inline constexpr std::uint64_t kTrampolineGpa = 0x8000;  // SIPI vector 0x08
inline constexpr std::uint64_t kPageTablesGpa = 0x10000;
inline constexpr std::uint64_t kPageTablesEnd = 0xA0000;
inline constexpr std::uint64_t kBootStackTop = 0x100000;  // [0xA0000, 1 MiB) is the BSP stack
inline constexpr std::uint32_t kMaxVcpus = SSI_MAX_VCPUS;

// x86 control-register / page-table bits the builder uses (and tests decode).
inline constexpr std::uint64_t kPtePresent = 1ull << 0;
inline constexpr std::uint64_t kPteWrite = 1ull << 1;
inline constexpr std::uint64_t kPteUser = 1ull << 2;
inline constexpr std::uint64_t kPtePwt = 1ull << 3;
inline constexpr std::uint64_t kPtePcd = 1ull << 4;
inline constexpr std::uint64_t kPteAccessed = 1ull << 5;
inline constexpr std::uint64_t kPteDirty = 1ull << 6;
inline constexpr std::uint64_t kPteHuge = 1ull << 7;
inline constexpr std::uint64_t kPteAddrMask = 0x000FFFFFFFFFF000ull;
inline constexpr std::uint64_t kCr0Pe = 1ull << 0, kCr0Mp = 1ull << 1, kCr0Et = 1ull << 4,
                               kCr0Ne = 1ull << 5, kCr0Wp = 1ull << 16, kCr0Pg = 1ull << 31;
inline constexpr std::uint64_t kCr4Pae = 1ull << 5;
inline constexpr std::uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;

// One segment register as KVM describes it (hidden part included).
struct SegmentReg {
  std::uint64_t base = 0;
  std::uint32_t limit = 0;
  std::uint16_t selector = 0;
  std::uint8_t type = 0, present = 0, dpl = 0, db = 0, s = 0, l = 0, g = 0, avl = 0;
  bool unusable = false;
};

struct TableReg {
  std::uint64_t base = 0;
  std::uint16_t limit = 0;
};

// Registers to set on a vCPU before its first KVM_RUN.
struct EntryState {
  std::uint64_t rip = 0, rsp = 0, rflags = 0x2, rdi = 0, rsi = 0;
  std::uint64_t rax = 0, rbx = 0;  // multiboot passes its magic and info block here
  SegmentReg cs, ds, es, fs, gs, ss, tr, ldt;
  TableReg gdt, idt;
  std::uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
};

struct BootConfig {
  std::uint32_t cpu_count = 1;
  std::uint32_t node_count = 1;
  std::span<const std::uint32_t> cpu_node{};  // node of each cpu; empty = all on node 0
  // First RAM offset homed at each node (ascending from 0); empty = all on node 0.
  std::span<const std::uint64_t> node_ram_start{};
  std::uint64_t kernel_entry = 0;
  std::uint64_t kernel_end = 0;
};

// What build_boot_area wrote: enough to start any CPU.
struct BootLayout {
  std::uint64_t kernel_cr3 = 0;  // the shared roots (node 0's copy)
  std::uint64_t user_cr3 = 0;
  std::uint64_t map_end = 0;
  std::uint32_t cpu_count = 0;
  std::uint64_t kernel_entry = 0;
  // Each node's own kernel root (empty: every CPU uses kernel_cr3), and the
  // node of each CPU.
  std::vector<std::uint64_t> node_kernel_cr3;
  std::vector<std::uint32_t> cpu_node;

  // The kernel root CPU `cpu` starts on.
  std::uint64_t kernel_cr3_of(std::uint32_t cpu) const;

  // The bootstrap processor (cpu 0) at the kernel entry.
  EntryState bsp_state() const;
  // An application processor after INIT + SIPI(vector) under the ssi boot
  // convention (64-bit mode at vector << 12, see boot_info.h).
  Result<EntryState> ap_state(std::uint32_t cpu, std::uint8_t sipi_vector) const;
};

// Writes page tables, GDT, TSSes and boot info into the boot area of `ram`.
Result<BootLayout> build_boot_area(const GuestRam& ram, const BootConfig& config);

// Reads back the layout from the boot info in `ram`: how a node that did not
// build the boot area (multi-node: node 0 did, through the DSM) starts an AP.
Result<BootLayout> read_boot_layout(const GuestRam& ram);

}  // namespace ssi::machine
