// A guest kernel read and checked once: its kind, its bytes, and for an ssi
// ELF test kernel the parsed image; the initrd (multiboot module) and the
// command line travel with it. `ssi run` builds one before it opens KVM (so
// bad input fails early) and hands it to the machine, which loads it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/kernel_boot.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

struct KernelRequest {
  std::string kernel;  // ELF64 test kernel, multiboot kernel or Linux bzImage
  std::string initrd;  // optional: Linux initrd / multiboot module
  std::string append;  // kernel command line (Linux, multiboot)
  std::uint32_t vcpus = 1;
  std::uint32_t nodes = 1;  // NUMA nodes the ACPI tables describe
};

struct KernelImage {
  std::string path{};  // for messages
  KernelKind kind = KernelKind::kSsiElf;
  std::vector<std::uint8_t> file{};
  ElfImage elf{};  // kSsiElf only
  std::vector<std::uint8_t> initrd{};
  std::string initrd_name{};
  std::string cmdline{};
  std::uint32_t vcpus = 1;
  std::uint32_t nodes = 1;

  // Foreign kinds: the loader's options; `cpu_node` (node of each vCPU,
  // empty = contiguous blocks) must outlive the returned value.
  // `tsc_khz`: the vCPUs' TSC rate (0 = unknown), see ForeignBootOptions.
  ForeignBootOptions foreign(std::span<const std::uint32_t> cpu_node,
                             std::uint64_t tsc_khz = 0) const;
};

// Reads the files and checks everything a loader will need against `map`;
// errors are one line prefixed with the kernel's path.
Result<KernelImage> read_kernel_image(const KernelRequest& request, const MemoryMap& map);

}  // namespace ssi::machine
