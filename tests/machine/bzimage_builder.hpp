// Builds synthetic bzImages for loader tests: a setup header with the fields
// ssi checks (defaults: protocol 2.15, relocatable 64-bit kernel, 16 MiB
// preferred address) and a recognisable protected-mode payload.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "ssi/linux_boot.hpp"

namespace ssi::testing {

struct BzImageBuilder {
  std::uint8_t setup_sects = 4;
  std::uint16_t version = 0x020F;
  std::uint8_t loadflags = 0x01;
  std::uint16_t xloadflags = 0x03;
  std::uint8_t relocatable = 1;
  std::uint32_t kernel_alignment = 0x200000;
  std::uint64_t pref_address = 0x1000000;
  std::uint32_t init_size = 0x400000;
  std::uint32_t initrd_addr_max = 0x7FFFFFFF;
  std::uint32_t cmdline_size = 2047;
  std::uint8_t jump = 0x6A;  // header ends at 0x202 + jump (0x26c, as in Linux 6.1)
  std::size_t payload = 8192;

  template <typename T>
  static void put(std::vector<std::uint8_t>& b, std::size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof(T));
  }

  std::vector<std::uint8_t> build() const {
    using namespace machine::bzimage;
    const std::size_t setup = (std::size_t{setup_sects == 0 ? 4u : setup_sects} + 1) * 512;
    std::vector<std::uint8_t> b(setup + payload, 0);
    b[kSetupSects] = setup_sects;
    put<std::uint16_t>(b, kBootFlag, 0xAA55);
    b[0x200] = 0xEB;  // jmp short
    b[0x201] = jump;
    put<std::uint32_t>(b, kHeaderMagicOff, kHeaderMagic);
    put<std::uint16_t>(b, kVersion, version);
    b[kLoadflags] = loadflags;
    put<std::uint32_t>(b, kInitrdAddrMax, initrd_addr_max);
    put<std::uint32_t>(b, kKernelAlignment, kernel_alignment);
    b[kRelocatable] = relocatable;
    put<std::uint16_t>(b, kXloadflags, xloadflags);
    put<std::uint32_t>(b, kCmdlineSize, cmdline_size);
    put<std::uint64_t>(b, kPrefAddress, pref_address);
    put<std::uint32_t>(b, kInitSize, init_size);
    for (std::size_t i = setup; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return b;
  }
};

}  // namespace ssi::testing
