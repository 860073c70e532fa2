#include "ssi/kernel_image.hpp"

#include <fmt/format.h>

namespace ssi::machine {

namespace {

constexpr std::uint64_t kMaxKernelFile = 256 * kMiB;
constexpr std::uint64_t kMaxInitrdFile = 4 * kGiB;

Error prefixed(const std::string& prefix, Error e) {
  e.message = prefix + ": " + e.message;
  return e;
}

}  // namespace

ForeignBootOptions KernelImage::foreign(std::span<const std::uint32_t> cpu_node,
                                        std::uint64_t tsc_khz) const {
  return {.vcpus = vcpus, .nodes = nodes, .cmdline = cmdline, .initrd = initrd,
          .initrd_name = initrd_name, .cpu_node = cpu_node, .tsc_khz = tsc_khz};
}

Result<KernelImage> read_kernel_image(const KernelRequest& r, const MemoryMap& map) {
  if (r.kernel.empty()) return make_error(Errc::kInvalidArgument, "--kernel is required");
  KernelImage k;
  k.path = r.kernel;
  k.vcpus = r.vcpus;
  k.nodes = r.nodes;
  k.cmdline = r.append;
  k.initrd_name = r.initrd;
  SSI_ASSIGN_OR_RETURN(k.file, read_file(r.kernel, kMaxKernelFile));
  auto kind = detect_kernel(k.file);
  if (!kind.ok()) return prefixed(r.kernel, std::move(kind).error());
  k.kind = *kind;
  if (!r.initrd.empty()) {
    SSI_ASSIGN_OR_RETURN(k.initrd, read_file(r.initrd, kMaxInitrdFile));
  }
  if (k.kind == KernelKind::kSsiElf) {
    if (!r.initrd.empty() || !r.append.empty())
      return make_error(Errc::kInvalidArgument,
                        fmt::format("{}: --initrd and --append need a Linux or multiboot kernel",
                                    r.kernel));
    auto image = parse_elf(k.file, map);
    if (!image.ok()) return prefixed(r.kernel, std::move(image).error());
    k.elf = *image;
    return k;
  }
  auto checked = check_foreign_kernel(k.kind, k.file, map, k.foreign({}));
  if (!checked.ok()) return prefixed(r.kernel, std::move(checked).error());
  return k;
}

}  // namespace ssi::machine
