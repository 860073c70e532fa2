#include "ssi/kernel_boot.hpp"

#include <fmt/format.h>

#include <limits>

#include "ssi/acpi.hpp"
#include "ssi/linux_boot.hpp"
#include "ssi/multiboot.hpp"

namespace ssi::machine {

namespace {

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

bool is_elf64(std::span<const std::uint8_t> f) {
  return f.size() >= 5 && f[0] == 0x7F && f[1] == 'E' && f[2] == 'L' && f[3] == 'F' && f[4] == 2;
}

AcpiConfig acpi_config(const MemoryMap& map, const ForeignBootOptions& o) {
  return {.cpus = o.vcpus,
          .cpu_node = o.cpu_node.empty()
                          ? cpu_nodes(o.vcpus, o.nodes)
                          : std::vector<std::uint32_t>(o.cpu_node.begin(), o.cpu_node.end()),
          .node_memory = node_memory(map, o.nodes),
          .remote_distance = o.numa_distance};
}

Result<void> check_counts(const ForeignBootOptions& o) {
  if (o.nodes == 0 || o.nodes > o.vcpus) {
    return bad(
        fmt::format("{} NUMA nodes for {} vCPUs (each node needs a vCPU)", o.nodes, o.vcpus));
  }
  return ok();
}

}  // namespace

std::string_view kernel_kind_name(KernelKind k) {
  switch (k) {
    case KernelKind::kSsiElf:
      return "ssi ELF64 test kernel";
    case KernelKind::kMultiboot:
      return "multiboot kernel";
    case KernelKind::kLinux:
      return "Linux bzImage";
  }
  return "?";
}

Result<KernelKind> detect_kernel(std::span<const std::uint8_t> file) {
  if (looks_like_bzimage(file)) return KernelKind::kLinux;
  if (find_multiboot_header(file)) return KernelKind::kMultiboot;
  if (is_elf64(file)) return KernelKind::kSsiElf;
  return bad(
      "not a kernel ssi can boot (expected a Linux bzImage, a multiboot kernel or an "
      "ELF64 test kernel)");
}

std::vector<std::uint32_t> cpu_nodes(std::uint32_t vcpus, std::uint32_t nodes) {
  std::vector<std::uint32_t> out(vcpus, 0);
  if (nodes == 0) return out;
  for (std::uint32_t i = 0; i < vcpus; ++i) {
    out[i] = static_cast<std::uint32_t>(std::uint64_t{i} * nodes / vcpus);
  }
  return out;
}

Result<void> check_foreign_kernel(KernelKind kind, std::span<const std::uint8_t> file,
                                  const MemoryMap& map, const ForeignBootOptions& o) {
  SSI_TRY(check_counts(o));
  SSI_TRY(build_acpi(acpi_config(map, o)));
  if (kind == KernelKind::kLinux) {
    SSI_ASSIGN_OR_RETURN(BzImage img, parse_bzimage(file));
    // Room for what ssi appends, whatever rate KVM reports later.
    const std::string cmdline = linux_command_line(
        o.cmdline, o.tsc_khz != 0 ? o.tsc_khz : std::numeric_limits<std::uint32_t>::max());
    SSI_TRY(plan_linux(img, map, {.cmdline = cmdline, .initrd_size = o.initrd.size()}));
    return ok();
  }
  if (kind == KernelKind::kMultiboot) {
    SSI_TRY(parse_multiboot(file, map));
    return ok();
  }
  return bad("an ELF64 test kernel is not booted through the foreign-kernel path");
}

Result<BootPlan> load_foreign_kernel(KernelKind kind, std::span<const std::uint8_t> file,
                                     const GuestRam& ram, const ForeignBootOptions& o) {
  SSI_TRY(check_counts(o));
  SSI_ASSIGN_OR_RETURN(AcpiTables acpi, build_acpi(acpi_config(ram.map(), o)));
  SSI_TRY(write_acpi(acpi, ram));
  if (kind == KernelKind::kLinux) {
    SSI_ASSIGN_OR_RETURN(BzImage img, parse_bzimage(file));
    // Page tables and GDT for the 64-bit entry; Linux replaces both early.
    SSI_ASSIGN_OR_RETURN(BootLayout boot, build_boot_area(ram, {.cpu_count = o.vcpus}));
    SSI_TRY(write_linux_gdt(ram));
    const std::string cmdline = linux_command_line(o.cmdline, o.tsc_khz);
    SSI_ASSIGN_OR_RETURN(
        LinuxLayout l,
        load_linux(file, img, o.initrd, ram, {.cmdline = cmdline, .acpi_rsdp = acpi.rsdp_gpa}));
    return BootPlan{.bsp = linux_entry_state(boot, l)};
  }
  if (kind == KernelKind::kMultiboot) {
    SSI_ASSIGN_OR_RETURN(MultibootImage img, parse_multiboot(file, ram.map()));
    SSI_ASSIGN_OR_RETURN(
        MultibootLayout l,
        load_multiboot(file, img, ram,
                       {.cmdline = o.cmdline, .module = o.initrd, .module_string = o.initrd_name}));
    return BootPlan{.bsp = multiboot_entry_state(l)};
  }
  return bad("an ELF64 test kernel is not booted through the foreign-kernel path");
}

}  // namespace ssi::machine
