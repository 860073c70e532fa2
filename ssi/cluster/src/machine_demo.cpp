// "machine-demo": the machine across nodes on real vCPUs when this host can
// run it (a usable /dev/kvm and a guest kernel, `ssi demo --kernel K`): it
// becomes the "guest" workload, the path of `ssi run --nodes N`. Otherwise
// the host-level DSM demo ("dsm-demo") runs instead, and one line on stderr
// says why. No fake vCPU is part of the ssi binary.
#include "machine_demo.hpp"

#include <cstdio>
#include <cstdlib>

#include "vcpu/kvm.hpp"

namespace ssi::cluster {
namespace {

std::string kvm_device() {
  const char* dev = std::getenv("SSI_KVM_DEVICE");  // as `ssi run`: tests point it elsewhere
  return dev ? dev : "/dev/kvm";
}

}  // namespace

coord::MachineConfig resolve_machine_demo(coord::MachineConfig config) {
  if (config.workload != "machine-demo") return config;
  std::string why;
  if (config.kernel.empty()) {
    why = "no guest kernel given (--kernel K runs it on real vCPUs)";
  } else if (auto hv = vcpu::open_kvm(kvm_device()); !hv.ok()) {
    why = "no usable KVM on this host: " + hv.error().message;
  } else {
    config.workload = "guest";
    if (config.vcpus < config.nodes) config.vcpus = 2 * config.nodes;
    return config;
  }
  std::fprintf(stderr, "ssi: machine-demo: %s; running the host-level DSM demo (dsm-demo) instead\n",
               why.c_str());
  config.workload = "dsm-demo";  // --rounds keeps its meaning: increments per thread
  return config;
}

}  // namespace ssi::cluster
