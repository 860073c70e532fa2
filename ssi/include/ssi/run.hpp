// `ssi run`: validate the user's request, load the kernel and run the
// machine. The CLI fills RunOptions; everything here is plain library code.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/result.hpp"

namespace ssi::machine {

struct RunOptions {
  std::uint32_t vcpus = 1;
  std::uint32_t nodes = 1;
  std::string mem = "64M";      // a size with K/M/G suffix
  std::string kernel;           // ELF64 test kernel, multiboot kernel or Linux bzImage
  std::string initrd;           // Linux initrd / multiboot module (optional)
  std::string append;           // kernel command line (Linux, multiboot)
  std::string kvm_device = "/dev/kvm";
  std::string transport = "tcp";  // --nodes > 1: data path between the node processes
  // --nodes > 1, after every check passed (KVM included): start the node
  // processes (the CLI installs the cluster launcher; this library sits
  // below it). Gets the RAM size in bytes; returns the machine's exit code.
  std::function<Result<int>(const RunOptions&, std::uint64_t mem_bytes)> run_on_nodes;
  // Node processes and a coordinator even for one node: live metrics and
  // resource limits live there.
  bool via_nodes = false;
  // Checkpoints (docs/checkpoint.md): continue the machine saved in this
  // directory instead of booting --kernel (its config replaces --vcpus/--mem)...
  std::string restore_dir;
  // ... and/or save it to checkpoint_dir when checkpoint_after_s seconds
  // passed or a console line contains checkpoint_on, then stop.
  std::string checkpoint_dir;
  double checkpoint_after_s = 0;
  std::string checkpoint_on;
};

// Checks everything that can be checked without KVM, then opens the KVM
// device and runs the guest to completion. Returns the guest's exit code
// (from the debug-exit port); an Error for bad input or a failed run, with a
// one-line message meant for the user.
Result<int> run(const RunOptions& options);

// Checks that the KVM device can be opened read-write; the error says that
// KVM is required ("/dev/kvm: No such file or directory (KVM is required...)").
Result<void> check_kvm(const std::string& device);

}  // namespace ssi::machine
