// Which loader a kernel file needs, and booting the "foreign" kinds (Linux
// bzImage, multiboot) that ssi did not write: everything from the file to
// the BSP's first register state, KVM-free so `ssi run` can reject bad input
// before it opens /dev/kvm and tests can check it on any host.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "ssi/boot.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

enum class KernelKind { kSsiElf, kMultiboot, kLinux };

std::string_view kernel_kind_name(KernelKind k);

// bzImage signatures first (a bzImage may contain anything later), then a
// multiboot header in the first 8 KiB, then a plain ELF64 (ssi test kernel).
Result<KernelKind> detect_kernel(std::span<const std::uint8_t> file);

struct ForeignBootOptions {
  std::uint32_t vcpus = 1;
  std::uint32_t nodes = 1;  // NUMA nodes in ACPI: vCPUs and RAM split evenly
  std::uint8_t numa_distance = 20;
  std::string_view cmdline{};
  std::span<const std::uint8_t> initrd{};
  std::string_view initrd_name{};  // multiboot module string
  // Node of each vCPU for the SRAT (the machine's placement); empty =
  // cpu_nodes(vcpus, nodes).
  std::span<const std::uint32_t> cpu_node{};
  // The vCPUs' TSC rate (KVM_GET_TSC_KHZ), told to Linux on its command line
  // (linux_command_line); 0 = not known yet (checks before KVM is opened
  // allow for the longest value).
  std::uint64_t tsc_khz = 0;
};

// vCPU i's node: contiguous blocks, as ssi places vCPUs on nodes.
std::vector<std::uint32_t> cpu_nodes(std::uint32_t vcpus, std::uint32_t nodes);

// Foreign kernels start their APs in real mode (INIT + SIPI, as on
// hardware), so the BSP's state is all a machine needs.
struct BootPlan {
  EntryState bsp;
};

// Everything load_foreign_kernel checks, without writing guest RAM.
Result<void> check_foreign_kernel(KernelKind kind, std::span<const std::uint8_t> file,
                                  const MemoryMap& map, const ForeignBootOptions& options);

// Loads a Linux or multiboot kernel plus its boot data (ACPI tables,
// boot_params or multiboot info, page tables for Linux) into `ram`.
Result<BootPlan> load_foreign_kernel(KernelKind kind, std::span<const std::uint8_t> file,
                                     const GuestRam& ram, const ForeignBootOptions& options);

}  // namespace ssi::machine
