// The hand-off block qemu/entry_shim.S reads at 0x500: how QEMU tests enter
// a kernel in exactly the state one of ssi's loaders computed (EntryState).
#pragma once

#include <gtest/gtest.h>

#include "ssi/boot.hpp"
#include "ssi/guest_ram.hpp"

namespace ssi::machine {

enum class ShimMode : std::uint32_t { kProtected32 = 1, kLong64 = 2 };

inline void write_qemu_handoff(const GuestRam& ram, const EntryState& st, ShimMode mode) {
  auto put32 = [&](std::uint64_t at, std::uint64_t v) {
    EXPECT_TRUE(ram.write_value(Gpa{at}, static_cast<std::uint32_t>(v)).ok());
  };
  EXPECT_TRUE(ram.write_value(Gpa{0x500}, st.gdt.limit).ok());
  put32(0x502, st.gdt.base);
  put32(0x508, static_cast<std::uint32_t>(mode));
  put32(0x50C, st.rip);
  put32(0x510, st.rax);
  put32(0x514, st.rbx);
  put32(0x518, st.rsi);
  put32(0x51C, st.cr3);
  EXPECT_TRUE(ram.write_value(Gpa{0x520}, st.cs.selector).ok());
  EXPECT_TRUE(ram.write_value(Gpa{0x522}, st.ds.selector).ok());
  put32(0x52C, st.rdi);
}

}  // namespace ssi::machine
