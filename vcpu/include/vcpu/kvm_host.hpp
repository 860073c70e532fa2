// Which KVM this host offers, and if none, why: machines of one kind differ
// (a paravirtual kvm-pvm that emulates guest ring 0, a standard kvm-amd /
// kvm-intel, or no /dev/kvm at all because kvm-pvm refused to bind inside a
// kvm-pvm guest). Tests print it when they skip; ssi prints it on errors.
#pragma once

#include <string>

namespace ssi::vcpu {

struct KvmHost {
  bool usable = false;
  // "kvm-pvm", "kvm-amd", "kvm-intel" or "kvm" (unknown module) when usable.
  std::string flavour;
  // When not usable: one line saying why (device missing and what the
  // kernel said, or the open error).
  std::string reason;
  // One line for logs and test output: "kvm-amd" or "no /dev/kvm: ...".
  std::string describe() const { return usable ? flavour : reason; }
};

// `sys_module` is /sys/module (a parameter so the logic is testable).
KvmHost probe_kvm_host(const std::string& device = "/dev/kvm",
                       const std::string& sys_module = "/sys/module");

}  // namespace ssi::vcpu
