// Builds small ELF64 files in memory for loader and CLI tests: a valid
// x86-64 executable by default, with knobs to break each field.
#pragma once

#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace ssi::testing {

struct ElfSegmentSpec {
  std::uint64_t paddr;
  std::vector<std::uint8_t> data;
  std::uint64_t mem_size;  // >= data.size()
  std::uint32_t flags = PF_R | PF_X;
  std::uint32_t type = PT_LOAD;
};

struct ElfBuilder {
  std::vector<ElfSegmentSpec> segments{{0x100000, {0xF4, 0xEB, 0xFD}, 0x1000}};  // hlt; jmp
  std::uint64_t entry = 0x100000;
  std::uint16_t machine = EM_X86_64;
  std::uint16_t type = ET_EXEC;
  unsigned char cls = ELFCLASS64;

  std::vector<std::uint8_t> build() const {
    std::vector<std::uint8_t> out(sizeof(Elf64_Ehdr) + segments.size() * sizeof(Elf64_Phdr));
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = cls;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type;
    eh.e_machine = machine;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<std::uint16_t>(segments.size());
    std::memcpy(out.data(), &eh, sizeof(eh));
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const auto& s = segments[i];
      Elf64_Phdr ph{};
      ph.p_type = s.type;
      ph.p_flags = s.flags;
      ph.p_offset = out.size();
      ph.p_vaddr = ph.p_paddr = s.paddr;
      ph.p_filesz = s.data.size();
      ph.p_memsz = s.mem_size;
      ph.p_align = 0x1000;
      std::memcpy(out.data() + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr), &ph, sizeof(ph));
      out.insert(out.end(), s.data.begin(), s.data.end());
    }
    return out;
  }

  // Offset of program header i's field, for tests that corrupt it after build().
  static std::size_t phdr_offset(std::size_t i) {
    return sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr);
  }
};

}  // namespace ssi::testing
