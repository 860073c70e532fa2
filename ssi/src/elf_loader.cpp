#include "ssi/elf_loader.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace ssi::machine {

namespace {

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

// a + b <= limit, without overflowing.
bool fits(std::uint64_t a, std::uint64_t b, std::uint64_t limit) {
  return a <= limit && b <= limit - a;
}

template <typename T>
T read_struct(std::span<const std::uint8_t> file, std::uint64_t offset) {
  T v;
  std::memcpy(&v, file.data() + offset, sizeof(T));  // the file has no alignment guarantee
  return v;
}

Result<Elf64_Ehdr> check_header(std::span<const std::uint8_t> file) {
  if (file.size() < SELFMAG) {
    return bad(fmt::format("not an ELF file ({} bytes, too small)", file.size()));
  }
  if (std::memcmp(file.data(), ELFMAG, SELFMAG) != 0) return bad("not an ELF file (bad magic)");
  if (file.size() < sizeof(Elf64_Ehdr)) {
    return bad(fmt::format("truncated ELF header ({} bytes)", file.size()));
  }
  auto eh = read_struct<Elf64_Ehdr>(file, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
    return bad("not a 64-bit ELF file (ssi kernels are ELF64 x86-64)");
  }
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return bad("ELF file is not little-endian");
  if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT) {
    return bad("unknown ELF version");
  }
  if (eh.e_machine != EM_X86_64) {
    return bad(fmt::format("ELF machine {} is not x86-64", eh.e_machine));
  }
  if (eh.e_type != ET_EXEC) {
    return bad(fmt::format("ELF type {} is not an executable (link the kernel -static -no-pie)",
                           eh.e_type));
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) {
    return bad(fmt::format("ELF program header size {} (expected {})", eh.e_phentsize,
                           sizeof(Elf64_Phdr)));
  }
  if (eh.e_phnum == 0 || eh.e_phnum == PN_XNUM) {
    return bad("ELF file has no program headers");
  }
  if (!fits(eh.e_phoff, std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), file.size())) {
    return bad(fmt::format("ELF program headers at offset {:#x} ({} entries) run past the end "
                           "of the file ({} bytes)",
                           eh.e_phoff, eh.e_phnum, file.size()));
  }
  return eh;
}

Result<ElfSegment> check_segment(unsigned index, const Elf64_Phdr& ph, std::uint64_t file_size,
                                 const MemoryMap& map) {
  if (ph.p_filesz > ph.p_memsz) {
    return bad(fmt::format("segment {}: file size {:#x} exceeds memory size {:#x}", index,
                           ph.p_filesz, ph.p_memsz));
  }
  if (!fits(ph.p_offset, ph.p_filesz, file_size)) {
    return bad(fmt::format("segment {}: file range [{:#x}, +{:#x}) runs past the end of the file "
                           "({} bytes)",
                           index, ph.p_offset, ph.p_filesz, file_size));
  }
  if (ph.p_vaddr != ph.p_paddr) {
    return bad(fmt::format("segment {}: virtual address {:#x} != physical address {:#x} (ssi "
                           "kernels are identity-mapped)",
                           index, ph.p_vaddr, ph.p_paddr));
  }
  if (!fits(ph.p_paddr, ph.p_memsz, std::numeric_limits<std::uint64_t>::max())) {
    return bad(fmt::format("segment {}: [{:#x}, +{:#x}) wraps around", index, ph.p_paddr,
                           ph.p_memsz));
  }
  if (ph.p_paddr < kBootAreaEnd) {
    return bad(fmt::format("segment {}: [{:#x}, {:#x}) overlaps the boot area [0, {:#x}) that "
                           "ssi reserves for page tables and boot info (link at >= 1 MiB)",
                           index, ph.p_paddr, ph.p_paddr + ph.p_memsz, kBootAreaEnd));
  }
  auto region = map.find(Gpa{ph.p_paddr});
  if (!region || region->kind != RegionKind::kRam ||
      !region->contains_range(Gpa{ph.p_paddr}, ph.p_memsz)) {
    return bad(fmt::format("segment {}: [{:#x}, {:#x}) is outside guest RAM ({} MiB)", index,
                           ph.p_paddr, ph.p_paddr + ph.p_memsz, map.ram_bytes() / kMiB));
  }
  return ElfSegment{Gpa{ph.p_paddr}, ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_flags};
}

}  // namespace

std::uint64_t ElfImage::end() const {
  std::uint64_t e = 0;
  for (const ElfSegment& s : segments) e = std::max(e, s.end());
  return e;
}

Result<ElfImage> parse_elf(std::span<const std::uint8_t> file, const MemoryMap& map) {
  SSI_ASSIGN_OR_RETURN(Elf64_Ehdr eh, check_header(file));
  ElfImage image;
  image.entry = eh.e_entry;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    auto ph = read_struct<Elf64_Phdr>(file, eh.e_phoff + std::uint64_t{i} * sizeof(Elf64_Phdr));
    // An empty PT_LOAD loads nothing; a non-empty one with memsz 0 is malformed.
    if (ph.p_type != PT_LOAD || (ph.p_memsz == 0 && ph.p_filesz == 0)) continue;
    SSI_ASSIGN_OR_RETURN(ElfSegment seg, check_segment(i, ph, file.size(), map));
    image.segments.push_back(seg);
  }
  if (image.segments.empty()) return bad("ELF file has no loadable (PT_LOAD) segments");
  std::sort(image.segments.begin(), image.segments.end(),
            [](const ElfSegment& a, const ElfSegment& b) { return a.gpa < b.gpa; });
  for (std::size_t i = 1; i < image.segments.size(); ++i) {
    const ElfSegment& prev = image.segments[i - 1];
    const ElfSegment& cur = image.segments[i];
    if (cur.gpa.value() < prev.end()) {
      return bad(fmt::format("loadable segments [{:#x}, {:#x}) and [{:#x}, {:#x}) overlap",
                             prev.gpa.value(), prev.end(), cur.gpa.value(), cur.end()));
    }
  }
  bool entry_ok = std::any_of(image.segments.begin(), image.segments.end(), [&](const auto& s) {
    return (s.flags & PF_X) != 0 && image.entry >= s.gpa.value() && image.entry < s.end();
  });
  if (!entry_ok) {
    return bad(fmt::format("entry point {:#x} is not inside an executable loaded segment",
                           image.entry));
  }
  return image;
}

Result<void> load_elf(const ElfImage& image, std::span<const std::uint8_t> file,
                      const GuestRam& ram) {
  for (const ElfSegment& s : image.segments) {
    if (!fits(s.file_offset, s.file_size, file.size())) {
      return bad("ELF image does not match the file it was parsed from");
    }
    SSI_TRY(ram.write(s.gpa, file.subspan(s.file_offset, s.file_size)));
    SSI_TRY(ram.fill(Gpa{s.gpa.value() + s.file_size}, s.mem_size - s.file_size, 0));
  }
  return ok();
}

Result<std::vector<std::uint8_t>> read_file(const std::string& path, std::uint64_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::from_errno(path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::from_errno(path);
  if (!S_ISREG(st.st_mode)) {
    return make_error(Errc::kInvalidArgument, path + ": not a regular file");
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    return make_error(Errc::kInvalidArgument,
                      fmt::format("{}: file is too large ({} bytes, limit {})", path, st.st_size,
                                  max_bytes));
  }
  std::vector<std::uint8_t> data(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno(path);
    if (n == 0) break;  // the file shrank under us: take what is there
    done += static_cast<std::size_t>(n);
  }
  data.resize(done);
  return data;
}

}  // namespace ssi::machine
