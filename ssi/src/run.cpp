#include "ssi/run.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ssi/boot.hpp"
#include "ssi/elf_loader.hpp"
#include "ssi/kernel_boot.hpp"
#include "ssi/machine.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

namespace {

constexpr std::uint64_t kMaxKernelFile = 256 * kMiB;
constexpr std::uint64_t kMaxInitrdFile = 4 * kGiB;

Error bad(std::string msg) { return make_error(Errc::kInvalidArgument, std::move(msg)); }

Error with_prefix(const std::string& prefix, Error e) {
  e.message = prefix + ": " + e.message;
  return e;
}

Result<void> check_counts(const RunOptions& o) {
  if (o.vcpus == 0) return bad("--vcpus must be at least 1");
  if (o.vcpus > kMaxVcpus) {
    return bad(fmt::format("--vcpus {} is above the limit of {}", o.vcpus, kMaxVcpus));
  }
  if (o.nodes == 0) return bad("--nodes must be at least 1");
  if (o.nodes > o.vcpus) {
    return bad(fmt::format("--nodes {} is more than --vcpus {} (each node runs a vCPU)", o.nodes,
                           o.vcpus));
  }
  if (o.nodes > 1 && o.transport != "tcp" && o.transport != "shm") {
    return bad(fmt::format("--transport must be tcp or shm, not '{}'", o.transport));
  }
  return ok();
}

}  // namespace

Result<void> check_kvm(const std::string& device) {
  int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    Error e = Error::from_errno(device);
    e.message += " (KVM is required to run guests)";
    return e;
  }
  ::close(fd);
  return ok();
}

Result<int> run(const RunOptions& o) {
  SSI_TRY(check_counts(o));
  auto mem = parse_size(o.mem);
  if (!mem.ok()) return with_prefix("--mem", std::move(mem).error());
  auto map = MemoryMap::pc(*mem);
  if (!map.ok()) return with_prefix("--mem", std::move(map).error());
  if (o.kernel.empty()) return bad("--kernel is required");
  SSI_ASSIGN_OR_RETURN(auto file, read_file(o.kernel, kMaxKernelFile));
  auto kind = detect_kernel(file);
  if (!kind.ok()) return with_prefix(o.kernel, std::move(kind).error());
  std::vector<std::uint8_t> initrd;
  if (!o.initrd.empty()) {
    SSI_ASSIGN_OR_RETURN(initrd, read_file(o.initrd, kMaxInitrdFile));
  }
  if (o.nodes > 1 || o.via_nodes) {
    if (*kind != KernelKind::kSsiElf)
      return make_error(Errc::kUnsupported,
                        fmt::format("{}: --nodes above 1 runs ssi ELF test kernels only (for now)",
                                    o.kernel));
    auto image = parse_elf(file, *map);
    if (!image.ok()) return with_prefix(o.kernel, std::move(image).error());
    SSI_TRY(check_kvm(o.kvm_device));
    if (!o.run_on_nodes) return make_error(Errc::kUnsupported, "no multi-node launcher");
    return o.run_on_nodes(o, *mem);
  }
  MachineConfig cfg{.vcpus = o.vcpus, .map = *map, .kernel_file = file, .kernel = {}};
  const ForeignBootOptions foreign{.vcpus = o.vcpus, .nodes = o.nodes, .cmdline = o.append,
                                   .initrd = initrd, .initrd_name = o.initrd};
  if (*kind == KernelKind::kSsiElf) {
    if (!o.initrd.empty() || !o.append.empty()) {
      return bad(fmt::format("{}: --initrd and --append need a Linux or multiboot kernel", o.kernel));
    }
    auto image = parse_elf(file, *map);
    if (!image.ok()) return with_prefix(o.kernel, std::move(image).error());
    cfg.kernel = *image;
  } else {
    auto checked = check_foreign_kernel(*kind, file, *map, foreign);
    if (!checked.ok()) return with_prefix(o.kernel, std::move(checked).error());
    cfg.load_foreign = [kind = *kind, &file, &foreign](const GuestRam& ram) {
      return load_foreign_kernel(kind, file, ram, foreign);
    };
  }
  SSI_TRY(check_kvm(o.kvm_device));
  SSI_ASSIGN_OR_RETURN(auto hv, vcpu::open_kvm(o.kvm_device));
  StopSignalBlock block;  // before any machine thread exists: Ctrl-C stops the guest cleanly
  SSI_ASSIGN_OR_RETURN(auto machine, Machine::create(*hv, cfg));
  return run_until_exit(*machine);
}

}  // namespace ssi::machine
