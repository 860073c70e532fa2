// The real KVM implementation of Hypervisor / Vm / Vcpu (no in-kernel
// irqchip: the LAPIC lives in userspace, see lapic.hpp).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "base/log.hpp"
#include "fd.hpp"
#include "kvm_vcpu.hpp"
#include "vcpu/kvm.hpp"
#include "vcpu/kvm_host.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::vcpu {
namespace {

using detail::Fd;

Result<int> check_ioctl(int r, const std::string& what) {
  if (r < 0) return Error::from_errno(what);
  return r;
}

class KvmVm final : public Vm {
 public:
  KvmVm(Fd vm, int kvm_fd, std::size_t run_size)
      : vm_(std::move(vm)), kvm_fd_(kvm_fd), run_size_(run_size) {}

  Result<void> add_memory(const MemorySlot& s) override {
    kvm_userspace_memory_region r{};
    r.slot = s.slot;
    r.flags = s.read_only ? KVM_MEM_READONLY : 0;
    r.guest_phys_addr = s.gpa.value();
    r.memory_size = s.size;
    r.userspace_addr = reinterpret_cast<std::uint64_t>(s.host);
    SSI_TRY(check_ioctl(::ioctl(vm_.get(), KVM_SET_USER_MEMORY_REGION, &r),
                        fmt::format("KVM_SET_USER_MEMORY_REGION slot {} gpa {:#x} size {:#x}",
                                    s.slot, s.gpa.value(), s.size)));
    return ok();
  }

  Result<std::unique_ptr<Vcpu>> create_vcpu(VcpuId id) override {
    int fd = ::ioctl(vm_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id.value()));
    if (fd < 0) return Error::from_errno(fmt::format("KVM_CREATE_VCPU {}", id));
    Fd vcpu_fd(fd);
    void* p = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd.get(), 0);
    if (p == MAP_FAILED) return Error::from_errno(fmt::format("mmap kvm_run of vCPU {}", id));
    return std::unique_ptr<Vcpu>(std::make_unique<detail::KvmVcpu>(
        id, std::move(vcpu_fd), detail::Mapping(p, run_size_)));
  }

  Result<void> enable_userspace_msrs() {
    kvm_enable_cap cap{};
    cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
    cap.args[0] = KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN |
                  KVM_MSR_EXIT_REASON_FILTER;
    SSI_TRY(check_ioctl(::ioctl(vm_.get(), KVM_ENABLE_CAP, &cap),
                        "KVM_ENABLE_CAP X86_USER_SPACE_MSR"));
    // Without the filter KVM answers APIC_BASE itself and silently drops
    // TSC_DEADLINE writes (KVM fact #5b, docs/vcpu.md); a zero bit denies =
    // exits to us.
    // KVM copies BITS_TO_LONGS(nmsrs) longs of bitmap: give it a whole one.
    std::uint64_t deny = 0;
    kvm_msr_filter filter{};
    filter.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    const std::uint32_t bases[] = {kMsrApicBase, kMsrTscDeadline};
    for (int i = 0; i < 2; ++i) {
      filter.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
      filter.ranges[i].nmsrs = 1;
      filter.ranges[i].base = bases[i];
      filter.ranges[i].bitmap = reinterpret_cast<std::uint8_t*>(&deny);
    }
    SSI_TRY(check_ioctl(::ioctl(vm_.get(), KVM_X86_SET_MSR_FILTER, &filter),
                        "KVM_X86_SET_MSR_FILTER (APIC_BASE, TSC_DEADLINE)"));
    return ok();
  }

  void enable_optional_caps() {
    // Instruction bytes in INTERNAL_ERROR exits: best effort, only for messages.
    if (::ioctl(kvm_fd_, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0) {
      kvm_enable_cap cap{};
      cap.cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE;
      cap.args[0] = 1;
      if (::ioctl(vm_.get(), KVM_ENABLE_CAP, &cap) < 0)
        log::get("vcpu")->debug("KVM_CAP_EXIT_ON_EMULATION_FAILURE: {}", std::strerror(errno));
    }
    // Real mode on VMX without unrestricted guest needs these; harmless elsewhere.
    if (::ioctl(vm_.get(), KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
      log::get("vcpu")->debug("KVM_SET_TSS_ADDR: {}", std::strerror(errno));
    std::uint64_t ident = 0xfffbc000;
    if (::ioctl(vm_.get(), KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
      log::get("vcpu")->debug("KVM_SET_IDENTITY_MAP_ADDR: {}", std::strerror(errno));
  }

 private:
  Fd vm_;
  int kvm_fd_;  // owned by the Hypervisor, which outlives its VMs
  std::size_t run_size_;
};

class KvmHypervisor final : public Hypervisor {
 public:
  explicit KvmHypervisor(Fd kvm) : kvm_(std::move(kvm)) {}

  Result<CpuidEntries> supported_cpuid() override {
    return detail::read_cpuid(kvm_.get(), KVM_GET_SUPPORTED_CPUID, "KVM_GET_SUPPORTED_CPUID");
  }

  Result<std::unique_ptr<Vm>> create_vm(const VmOptions& options) override {
    int fd = ::ioctl(kvm_.get(), KVM_CREATE_VM, 0UL);
    if (fd < 0) return Error::from_errno("KVM_CREATE_VM");
    int run_size = ::ioctl(kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < 0) return Error::from_errno("KVM_GET_VCPU_MMAP_SIZE");
    auto vm = std::make_unique<KvmVm>(Fd(fd), kvm_.get(), static_cast<std::size_t>(run_size));
    if (options.userspace_msrs) SSI_TRY(vm->enable_userspace_msrs());
    vm->enable_optional_caps();
    return std::unique_ptr<Vm>(std::move(vm));
  }

  int max_vcpus() const override {
    int n = ::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
    if (n <= 0) n = ::ioctl(kvm_.get(), KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
    return n > 0 ? n : 4;  // KVM API: 4 if neither cap is reported
  }

 private:
  Fd kvm_;
};

}  // namespace

Result<std::unique_ptr<Hypervisor>> open_kvm(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO)
      return Error{Errc::kUnsupported, fmt::format("no {} (KVM not available here)", path), err};
    return Error::from_errno(fmt::format("open {}", path), err);
  }
  Fd kvm(fd);
  int version = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION)
    return make_error(Errc::kUnsupported,
                      fmt::format("{}: KVM API version {} (need {})", path, version,
                                  KVM_API_VERSION));
  if (::ioctl(kvm.get(), KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0)
    return make_error(Errc::kUnsupported, "KVM lacks KVM_CAP_IMMEDIATE_EXIT (needed for kicks)");
  return std::unique_ptr<Hypervisor>(std::make_unique<KvmHypervisor>(std::move(kvm)));
}

bool kvm_available() { return probe_kvm_host().usable; }

}  // namespace ssi::vcpu
