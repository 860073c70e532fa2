#include "vcpu/kvm_host.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ssi::vcpu {

namespace {

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

KvmHost probe_kvm_host(const std::string& device, const std::string& sys_module) {
  KvmHost h;
  const bool pvm = exists(sys_module + "/kvm_pvm");
  const bool amd = exists(sys_module + "/kvm_amd");
  const bool intel = exists(sys_module + "/kvm_intel");
  int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    ::close(fd);
    h.usable = true;
    h.flavour = amd ? "kvm-amd" : intel ? "kvm-intel" : pvm ? "kvm-pvm" : "kvm";
    return h;
  }
  const int err = errno;
  if (err != ENOENT) {
    h.reason = device + ": " + std::strerror(err);
  } else if (pvm) {
    // kvm-pvm is built in; inside a kvm-pvm guest it logs "this kernel is
    // itself a kvm-pvm guest; not binding" and creates no device.
    h.reason = "no " + device + ": kvm-pvm did not bind (this kernel is itself a kvm-pvm guest)";
  } else if (exists(sys_module + "/kvm")) {
    h.reason = "no " + device + ": kvm is loaded but no vendor module (kvm-amd/kvm-intel) bound";
  } else {
    h.reason = "no " + device + ": this kernel has no KVM";
  }
  return h;
}

}  // namespace ssi::vcpu
