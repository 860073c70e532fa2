#include "kvm_vcpu.hpp"

#include <signal.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace ssi::vcpu::detail {
namespace {

// The kick signal sets immediate_exit on the kvm_run of the vCPU that the
// receiving thread is running (KVM fact #4 in docs/vcpu.md: a signal
// before the thread set t_run is lost, hence Vcpu's kick-pending flag
// checked before every KVM_RUN). A realtime signal, so that it
// does not collide with SIGUSR1/2 users.
thread_local kvm_run* t_run = nullptr;

void on_kick_signal(int) {
  if (kvm_run* r = t_run) r->immediate_exit = 1;
}

int kick_signal() {
  static const int sig = [] {
    int s = SIGRTMIN + 3;
    struct sigaction sa {};
    sa.sa_handler = on_kick_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must come back with EINTR
    ::sigaction(s, &sa, nullptr);
    return s;
  }();
  return sig;
}

}  // namespace

KvmVcpu::KvmVcpu(VcpuId id, Fd fd, Mapping run)
    : id_(id), fd_(std::move(fd)), run_map_(std::move(run)),
      run_(static_cast<kvm_run*>(run_map_.get())) {
  kick_signal();  // install the handler before any kick can be sent
}

Result<VcpuExit> KvmVcpu::run() {
  {
    std::lock_guard lock(thread_mu_);
    in_run_ = true;
    thread_ = ::pthread_self();
  }
  t_run = run_;
  // A kick that came before we published the thread is seen here.
  if (kick_pending_.exchange(false)) run_->immediate_exit = 1;
  int r = ::ioctl(fd_.get(), KVM_RUN, 0);
  int err = errno;
  run_->immediate_exit = 0;
  t_run = nullptr;
  {
    std::lock_guard lock(thread_mu_);
    in_run_ = false;
  }
  if (r < 0) {
    if (err != EINTR && err != EAGAIN)
      return Error::from_errno(fmt::format("KVM_RUN vCPU {}", id_), err);
    // Everything a kicker published before kick() is re-checked by the
    // caller after this return, so the flag can be dropped now.
    kick_pending_.store(false);
    VcpuExit e;
    e.kind = ExitKind::kInterrupted;
    e.raw_reason = KVM_EXIT_INTR;
    e.ready_for_interrupt_injection = run_->ready_for_interrupt_injection != 0;
    e.if_flag = run_->if_flag != 0;
    e.cr8 = static_cast<std::uint8_t>(run_->cr8);
    return e;
  }
  return decode();
}

void KvmVcpu::kick() {
  kick_pending_.store(true);
  std::lock_guard lock(thread_mu_);
  if (in_run_) ::pthread_kill(thread_, kick_signal());
}

VcpuExit KvmVcpu::decode() {
  VcpuExit e;
  e.raw_reason = run_->exit_reason;
  e.ready_for_interrupt_injection = run_->ready_for_interrupt_injection != 0;
  e.if_flag = run_->if_flag != 0;
  e.cr8 = static_cast<std::uint8_t>(run_->cr8);
  auto* base = reinterpret_cast<std::uint8_t*>(run_);
  switch (run_->exit_reason) {
    case KVM_EXIT_IO:
      e.kind = ExitKind::kIo;
      e.io.port = run_->io.port;
      e.io.is_write = run_->io.direction == KVM_EXIT_IO_OUT;
      e.io.size = run_->io.size;
      e.io.count = run_->io.count;
      e.io.data = {base + run_->io.data_offset,
                   static_cast<std::size_t>(run_->io.size) * run_->io.count};
      break;
    case KVM_EXIT_MMIO:
      e.kind = ExitKind::kMmio;
      e.mmio.gpa = Gpa{run_->mmio.phys_addr};
      e.mmio.is_write = run_->mmio.is_write != 0;
      e.mmio.data = {run_->mmio.data, std::min<std::size_t>(run_->mmio.len, 8)};
      break;
    case KVM_EXIT_HLT: e.kind = ExitKind::kHlt; break;
    case KVM_EXIT_SET_TPR: e.kind = ExitKind::kSetTpr; break;
    case KVM_EXIT_SHUTDOWN: e.kind = ExitKind::kShutdown; break;
    case KVM_EXIT_IRQ_WINDOW_OPEN: e.kind = ExitKind::kIrqWindowOpen; break;
    case KVM_EXIT_INTR: e.kind = ExitKind::kInterrupted; break;
    case KVM_EXIT_FAIL_ENTRY:
      e.kind = ExitKind::kFailEntry;
      e.fail_entry.hardware_entry_failure_reason = run_->fail_entry.hardware_entry_failure_reason;
      e.fail_entry.cpu = run_->fail_entry.cpu;
      break;
    case KVM_EXIT_INTERNAL_ERROR: {
      e.kind = ExitKind::kInternalError;
      e.internal.suberror = run_->internal.suberror;
      std::uint32_t n = std::min<std::uint32_t>(run_->internal.ndata, 16);
      e.internal.data.assign(run_->internal.data, run_->internal.data + n);
      const auto& ef = run_->emulation_failure;
      if (ef.suberror == KVM_INTERNAL_ERROR_EMULATION && ef.ndata >= 3 &&
          (ef.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        e.internal.insn_bytes.assign(ef.insn_bytes,
                                     ef.insn_bytes + std::min<std::uint8_t>(ef.insn_size, 15));
      }
      break;
    }
    case KVM_EXIT_X86_RDMSR:
    case KVM_EXIT_X86_WRMSR:
      e.kind = run_->exit_reason == KVM_EXIT_X86_RDMSR ? ExitKind::kRdmsr : ExitKind::kWrmsr;
      e.msr.index = run_->msr.index;
      e.msr.reason = static_cast<MsrExitReason>(run_->msr.reason);
      e.msr.data = reinterpret_cast<std::uint64_t*>(&run_->msr.data);  // __u64 is unsigned long long
      e.msr.error = &run_->msr.error;
      break;
    case KVM_EXIT_SYSTEM_EVENT:
      e.kind = ExitKind::kSystemEvent;
      e.system_event_type = run_->system_event.type;
      break;
    default: e.kind = ExitKind::kUnknown; break;
  }
  return e;
}

void KvmVcpu::request_interrupt_window(bool on) { run_->request_interrupt_window = on ? 1 : 0; }

void KvmVcpu::set_cr8(std::uint8_t cr8) { run_->cr8 = cr8 & 0xF; }

Result<void> KvmVcpu::inject_interrupt(std::uint8_t vector) {
  kvm_interrupt irq{};
  irq.irq = vector;
  if (::ioctl(fd_.get(), KVM_INTERRUPT, &irq) < 0)
    return Error::from_errno(fmt::format("KVM_INTERRUPT vector {:#x} vCPU {}", vector, id_));
  return ok();
}

Result<void> KvmVcpu::inject_nmi() {
  if (::ioctl(fd_.get(), KVM_NMI, 0) < 0)
    return Error::from_errno(fmt::format("KVM_NMI vCPU {}", id_));
  return ok();
}

template <typename T>
Result<T> KvmVcpu::get(unsigned long request, const char* what) {
  T v{};
  if (::ioctl(fd_.get(), request, &v) < 0)
    return Error::from_errno(fmt::format("{} vCPU {}", what, id_));
  return v;
}

template <typename T>
Result<void> KvmVcpu::set(unsigned long request, const T& value, const char* what) {
  if (::ioctl(fd_.get(), request, &value) < 0)
    return Error::from_errno(fmt::format("{} vCPU {}", what, id_));
  return ok();
}

Result<void> KvmVcpu::set_cpuid(const CpuidEntries& entries) {
  std::vector<std::uint8_t> buf(sizeof(kvm_cpuid2) + entries.size() * sizeof(kvm_cpuid_entry2));
  auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
  c->nent = static_cast<std::uint32_t>(entries.size());
  std::memcpy(c->entries, entries.data(), entries.size() * sizeof(kvm_cpuid_entry2));
  if (::ioctl(fd_.get(), KVM_SET_CPUID2, c) < 0)
    return Error::from_errno(fmt::format("KVM_SET_CPUID2 ({} entries) vCPU {}", entries.size(), id_));
  return ok();
}

Result<CpuidEntries> read_cpuid(int fd, unsigned long request, const std::string& what) {
  // The caller cannot know the entry count: grow until KVM stops saying E2BIG.
  for (std::uint32_t n = 128; n <= 4096; n *= 2) {
    std::vector<std::uint8_t> buf(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* c = reinterpret_cast<kvm_cpuid2*>(buf.data());
    c->nent = n;
    if (::ioctl(fd, request, c) == 0) return CpuidEntries(c->entries, c->entries + c->nent);
    if (errno != E2BIG) return Error::from_errno(what);
  }
  return make_error(Errc::kInternal, what + ": more than 4096 entries");
}

Result<CpuidEntries> KvmVcpu::get_cpuid() {
  return read_cpuid(fd_.get(), KVM_GET_CPUID2, fmt::format("KVM_GET_CPUID2 vCPU {}", id_));
}

Result<kvm_regs> KvmVcpu::get_regs() { return get<kvm_regs>(KVM_GET_REGS, "KVM_GET_REGS"); }
Result<void> KvmVcpu::set_regs(const kvm_regs& v) { return set(KVM_SET_REGS, v, "KVM_SET_REGS"); }
Result<kvm_sregs> KvmVcpu::get_sregs() { return get<kvm_sregs>(KVM_GET_SREGS, "KVM_GET_SREGS"); }
Result<void> KvmVcpu::set_sregs(const kvm_sregs& v) { return set(KVM_SET_SREGS, v, "KVM_SET_SREGS"); }
Result<kvm_fpu> KvmVcpu::get_fpu() { return get<kvm_fpu>(KVM_GET_FPU, "KVM_GET_FPU"); }
Result<void> KvmVcpu::set_fpu(const kvm_fpu& v) { return set(KVM_SET_FPU, v, "KVM_SET_FPU"); }
Result<XsaveArea> KvmVcpu::get_xsave() {
  static_assert(sizeof(XsaveArea) == sizeof(kvm_xsave::region));
  return get<XsaveArea>(KVM_GET_XSAVE, "KVM_GET_XSAVE");
}
Result<void> KvmVcpu::set_xsave(const XsaveArea& v) { return set(KVM_SET_XSAVE, v, "KVM_SET_XSAVE"); }
Result<kvm_xcrs> KvmVcpu::get_xcrs() { return get<kvm_xcrs>(KVM_GET_XCRS, "KVM_GET_XCRS"); }
Result<void> KvmVcpu::set_xcrs(const kvm_xcrs& v) { return set(KVM_SET_XCRS, v, "KVM_SET_XCRS"); }
Result<kvm_vcpu_events> KvmVcpu::get_events() {
  return get<kvm_vcpu_events>(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Result<void> KvmVcpu::set_events(const kvm_vcpu_events& v) {
  return set(KVM_SET_VCPU_EVENTS, v, "KVM_SET_VCPU_EVENTS");
}
Result<kvm_mp_state> KvmVcpu::get_mp_state() {
  return get<kvm_mp_state>(KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Result<void> KvmVcpu::set_mp_state(const kvm_mp_state& v) {
  return set(KVM_SET_MP_STATE, v, "KVM_SET_MP_STATE");
}
Result<kvm_debugregs> KvmVcpu::get_debugregs() {
  return get<kvm_debugregs>(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
Result<void> KvmVcpu::set_debugregs(const kvm_debugregs& v) {
  return set(KVM_SET_DEBUGREGS, v, "KVM_SET_DEBUGREGS");
}

namespace {
// kvm_msrs with room for one entry (kvm_msrs ends in a flexible array).
struct OneMsr {
  alignas(kvm_msrs) std::uint8_t buf[sizeof(kvm_msrs) + sizeof(kvm_msr_entry)]{};
  kvm_msrs* msrs() { return reinterpret_cast<kvm_msrs*>(buf); }
  kvm_msr_entry& entry() { return msrs()->entries[0]; }
};
}  // namespace

Result<std::vector<kvm_msr_entry>> KvmVcpu::get_msrs(const std::vector<std::uint32_t>& indices) {
  // One at a time: KVM stops a batch at the first MSR it does not know.
  std::vector<kvm_msr_entry> out;
  for (auto index : indices) {
    OneMsr m;
    m.msrs()->nmsrs = 1;
    m.entry().index = index;
    int r = ::ioctl(fd_.get(), KVM_GET_MSRS, m.msrs());
    if (r < 0) return Error::from_errno(fmt::format("KVM_GET_MSRS {:#x} vCPU {}", index, id_));
    if (r == 1) out.push_back(m.entry());
  }
  return out;
}

Result<void> KvmVcpu::set_msrs(const std::vector<kvm_msr_entry>& msrs) {
  for (const auto& e : msrs) {
    OneMsr m;
    m.msrs()->nmsrs = 1;
    m.entry() = e;
    int r = ::ioctl(fd_.get(), KVM_SET_MSRS, m.msrs());
    if (r < 0) return Error::from_errno(fmt::format("KVM_SET_MSRS {:#x} vCPU {}", e.index, id_));
    if (r != 1)
      return make_error(Errc::kSystem,
                        fmt::format("KVM_SET_MSRS: KVM refused MSR {:#x} value {:#x} on vCPU {}",
                                    e.index, e.data, id_));
  }
  return ok();
}

Result<std::uint64_t> KvmVcpu::get_tsc_khz() {
  int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  if (khz <= 0) return Error::from_errno(fmt::format("KVM_GET_TSC_KHZ vCPU {}", id_));
  return static_cast<std::uint64_t>(khz);
}

namespace {

// The vCPU attribute KVM_VCPU_TSC_OFFSET, read from or written to `*offset`.
kvm_device_attr tsc_offset_attr(std::int64_t* offset) {
  kvm_device_attr attr{};
  attr.group = KVM_VCPU_TSC_CTRL;
  attr.attr = KVM_VCPU_TSC_OFFSET;
  attr.addr = reinterpret_cast<std::uint64_t>(offset);
  return attr;
}

}  // namespace

Result<std::optional<std::int64_t>> KvmVcpu::get_tsc_offset() {
  std::int64_t offset = 0;
  kvm_device_attr attr = tsc_offset_attr(&offset);
  if (::ioctl(fd_.get(), KVM_HAS_DEVICE_ATTR, &attr) < 0) {
    // ENXIO: no such attribute; ENOTTY/EINVAL: no vCPU attributes at all.
    if (errno == ENXIO || errno == ENOTTY || errno == EINVAL) return std::optional<std::int64_t>{};
    return Error::from_errno(fmt::format("KVM_HAS_DEVICE_ATTR TSC offset vCPU {}", id_));
  }
  if (::ioctl(fd_.get(), KVM_GET_DEVICE_ATTR, &attr) < 0)
    return Error::from_errno(fmt::format("KVM_GET_DEVICE_ATTR TSC offset vCPU {}", id_));
  return std::optional<std::int64_t>{offset};
}

Result<void> KvmVcpu::set_tsc_offset(std::int64_t offset) {
  kvm_device_attr attr = tsc_offset_attr(&offset);
  if (::ioctl(fd_.get(), KVM_SET_DEVICE_ATTR, &attr) < 0)
    return Error::from_errno(fmt::format("KVM_SET_DEVICE_ATTR TSC offset {} vCPU {}", offset, id_));
  return ok();
}

}  // namespace ssi::vcpu::detail
