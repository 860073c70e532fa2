// ELF64 loader for ssi's test kernels (tests/guest/). Kernels are static,
// identity-mapped x86-64 executables: each PT_LOAD segment goes to guest
// physical address p_paddr (== p_vaddr). The file is untrusted input, so
// parse_elf validates every field before anything is copied.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

struct ElfSegment {
  Gpa gpa;
  std::uint64_t file_offset = 0;
  std::uint64_t file_size = 0;
  std::uint64_t mem_size = 0;  // >= file_size; the rest is zero-filled (.bss)
  std::uint32_t flags = 0;     // PF_R / PF_W / PF_X

  std::uint64_t end() const { return gpa.value() + mem_size; }
};

struct ElfImage {
  std::uint64_t entry = 0;
  std::vector<ElfSegment> segments;  // sorted by address, non-overlapping
  // First byte after the highest segment.
  std::uint64_t end() const;
};

// Validates `file` as a loadable test kernel for `map`: ELF magic, 64-bit,
// little-endian, x86-64, executable, program headers inside the file, every
// PT_LOAD inside one RAM region and outside the boot area, segments not
// overlapping, entry inside an executable segment. Each failure is its own
// clear message (Errc::kInvalidArgument).
Result<ElfImage> parse_elf(std::span<const std::uint8_t> file, const MemoryMap& map);

// Copies the segments of a parsed image into guest RAM and zero-fills .bss.
Result<void> load_elf(const ElfImage& image, std::span<const std::uint8_t> file,
                      const GuestRam& ram);

// Reads a whole regular file (the kernel) of at most max_bytes into memory;
// errors carry the path (+ errno).
Result<std::vector<std::uint8_t>> read_file(const std::string& path, std::uint64_t max_bytes);

}  // namespace ssi::machine
