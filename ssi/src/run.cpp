#include "ssi/run.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "ssi/checkpoint.hpp"
#include "ssi/checkpoint_run.hpp"

#include "ssi/boot.hpp"
#include "ssi/kernel_image.hpp"
#include "ssi/machine.hpp"
#include "ssi/memory_map.hpp"

namespace ssi::machine {

namespace {

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

// --restore DIR: the checked checkpoint's machine, continued.
Result<int> run_restored(const RunOptions& o, const CheckpointTrigger& trigger) {
  if (!o.kernel.empty()) return bad("--restore continues a saved machine: no --kernel with it");
  // Every check before KVM is opened: a damaged checkpoint touches nothing.
  auto t_verify = std::chrono::steady_clock::now();
  SSI_ASSIGN_OR_RETURN(Checkpoint c, open_checkpoint(o.restore_dir));
  double verify_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_verify).count();
  if (c.config.vcpus > kMaxVcpus)
    return make_error(Errc::kProtocol, fmt::format("checkpoint {} refused: {} vCPUs, the limit is {}",
                                                   o.restore_dir, c.config.vcpus, kMaxVcpus));
  if (o.nodes > c.config.vcpus)
    return bad(fmt::format("--nodes {} is more than the checkpoint's {} vCPUs (each node runs a vCPU)", o.nodes,
                           c.config.vcpus));
  auto map = MemoryMap::pc(c.config.mem_bytes);
  if (!map.ok()) return with_prefix("checkpoint " + o.restore_dir, std::move(map).error());
  if (map->ram_bytes() != c.ram_bytes)
    return make_error(Errc::kProtocol, fmt::format("checkpoint {} refused: {} bytes of RAM for --mem {}",
                                                   o.restore_dir, c.ram_bytes, c.config.mem_bytes));
  SSI_TRY(check_kvm(o.kvm_device));
  if (o.nodes > 1 || o.via_nodes) {
    // Every node process restores its share (the launcher's prepare_restore).
    if (!o.run_on_nodes) return make_error(Errc::kUnsupported, "no multi-node launcher");
    std::fprintf(stderr, "ssi: restoring from %s on %u nodes: {\"verify_ms\": %.3f, \"ram_pages\": %llu}\n",
                 o.restore_dir.c_str(), o.nodes, verify_ms, static_cast<unsigned long long>(c.ram_pages));
    RunOptions on = o;
    on.vcpus = c.config.vcpus;
    SSI_TRY(check_counts(on));
    return o.run_on_nodes(on, c.config.mem_bytes);
  }
  SSI_ASSIGN_OR_RETURN(auto hv, vcpu::open_kvm(o.kvm_device));
  StopSignalBlock block;
  SSI_ASSIGN_OR_RETURN(auto machine, Machine::create(*hv, {.vcpus = c.config.vcpus, .map = *map,
                                                           .kernel = c.config.kernel}));
  auto t0 = std::chrono::steady_clock::now();
  SSI_TRY(restore_machine(*machine, c));
  std::fprintf(stderr,
               "ssi: restored from %s: {\"verify_ms\": %.3f, \"restore_ms\": %.3f, \"ram_pages\": %llu}\n",
               o.restore_dir.c_str(), verify_ms,
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
               static_cast<unsigned long long>(c.ram_pages));
  return run_with_checkpoint(*machine, trigger, c.config);
}

Result<int> run(const RunOptions& o) {
  CheckpointTrigger trigger{o.checkpoint_dir, o.checkpoint_after_s, o.checkpoint_on};
  if (!o.checkpoint_dir.empty() && !trigger.enabled())
    return bad("--checkpoint-dir needs --checkpoint-after SECONDS or --checkpoint-on TEXT");
  if (o.checkpoint_dir.empty() && (o.checkpoint_after_s > 0 || !o.checkpoint_on.empty()))
    return bad("--checkpoint-after / --checkpoint-on need --checkpoint-dir DIR");
  if (!o.restore_dir.empty()) return run_restored(o, trigger);
  if (o.kernel.empty()) return bad("--kernel is required (or --restore DIR)");
  SSI_TRY(check_counts(o));
  auto mem = parse_size(o.mem);
  if (!mem.ok()) return with_prefix("--mem", std::move(mem).error());
  auto map = MemoryMap::pc(*mem);
  if (!map.ok()) return with_prefix("--mem", std::move(map).error());
  // Read and checked once, before KVM is opened: bad input fails early.
  SSI_ASSIGN_OR_RETURN(KernelImage kernel,
                       read_kernel_image({.kernel = o.kernel, .initrd = o.initrd,
                                          .append = o.append, .vcpus = o.vcpus,
                                          .nodes = o.nodes},
                                         *map));
  SSI_TRY(check_kvm(o.kvm_device));
  if (o.nodes > 1 || o.via_nodes) {
    // The node processes get the file names (and node 0 loads the kernel
    // into the DSM region): the image cannot cross a process boundary.
    if (!o.run_on_nodes) return make_error(Errc::kUnsupported, "no multi-node launcher");
    return o.run_on_nodes(o, *mem);
  }
  SSI_ASSIGN_OR_RETURN(auto hv, vcpu::open_kvm(o.kvm_device));
  StopSignalBlock block;  // before any machine thread exists: Ctrl-C stops the guest cleanly
  SSI_ASSIGN_OR_RETURN(auto machine,
                       Machine::create(*hv, {.vcpus = o.vcpus, .map = *map, .kernel = kernel.kind}));
  SSI_TRY(machine->load(&kernel));
  return run_with_checkpoint(*machine, trigger,
                             {.vcpus = o.vcpus, .mem_bytes = *mem, .kernel = kernel.kind, .nodes = 1});
}

}  // namespace ssi::machine
