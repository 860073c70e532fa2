// `ssi run`: validate the user's request, load the kernel and run the
// machine. The CLI fills RunOptions; everything here is plain library code.
#pragma once

#include <cstdint>
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
