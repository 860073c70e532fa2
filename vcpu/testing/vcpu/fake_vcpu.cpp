#include "vcpu/fake_vcpu.hpp"

#include <fmt/format.h>

namespace ssi::vcpu::testing {

FakeVcpu& FakeVcpu::push(ScriptedExit e) {
  std::lock_guard lock(mu_);
  script_.push_back(std::move(e));
  return *this;
}

static ScriptedExit make(ExitKind kind, bool ready) {
  ScriptedExit s;
  s.exit.kind = kind;
  s.exit.ready_for_interrupt_injection = ready;
  s.exit.if_flag = ready;
  return s;
}

FakeVcpu& FakeVcpu::push_io_out(std::uint16_t port, std::vector<std::uint8_t> bytes, bool ready) {
  auto s = make(ExitKind::kIo, ready);
  s.exit.io.port = port;
  s.exit.io.is_write = true;
  s.exit.io.size = static_cast<std::uint8_t>(bytes.size());
  s.exit.io.count = 1;
  s.data = std::move(bytes);
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_io_in(std::uint16_t port, std::uint8_t size, bool ready) {
  auto s = make(ExitKind::kIo, ready);
  s.exit.io.port = port;
  s.exit.io.size = size;
  s.exit.io.count = 1;
  s.data.assign(size, 0);
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_io_string_out(std::uint16_t port, std::uint8_t size,
                                       std::vector<std::uint8_t> bytes, bool ready) {
  auto s = make(ExitKind::kIo, ready);
  s.exit.io.port = port;
  s.exit.io.is_write = true;
  s.exit.io.size = size;
  s.exit.io.count = static_cast<std::uint32_t>(bytes.size() / size);
  s.data = std::move(bytes);
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_io_string_in(std::uint16_t port, std::uint8_t size, std::uint32_t count,
                                      bool ready) {
  auto s = make(ExitKind::kIo, ready);
  s.exit.io.port = port;
  s.exit.io.size = size;
  s.exit.io.count = count;
  s.data.assign(static_cast<std::size_t>(size) * count, 0);
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_mmio_write(std::uint64_t gpa, std::vector<std::uint8_t> bytes,
                                    bool ready) {
  auto s = make(ExitKind::kMmio, ready);
  s.exit.mmio.gpa = Gpa{gpa};
  s.exit.mmio.is_write = true;
  s.data = std::move(bytes);
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_mmio_read(std::uint64_t gpa, std::uint32_t len, bool ready) {
  auto s = make(ExitKind::kMmio, ready);
  s.exit.mmio.gpa = Gpa{gpa};
  s.data.assign(len, 0);
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_rdmsr(std::uint32_t index, MsrExitReason reason, bool ready) {
  auto s = make(ExitKind::kRdmsr, ready);
  s.exit.msr.index = index;
  s.exit.msr.reason = reason;
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_wrmsr(std::uint32_t index, std::uint64_t value, MsrExitReason reason,
                               bool ready) {
  auto s = make(ExitKind::kWrmsr, ready);
  s.exit.msr.index = index;
  s.exit.msr.reason = reason;
  s.msr_data = value;
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::push_simple(ExitKind kind, bool ready) { return push(make(kind, ready)); }

FakeVcpu& FakeVcpu::push_set_tpr(std::uint8_t cr8, bool ready) {
  auto s = make(ExitKind::kSetTpr, ready);
  s.cr8 = cr8;
  return push(std::move(s));
}

FakeVcpu& FakeVcpu::then_cr8(std::uint8_t cr8) {
  std::lock_guard lock(mu_);
  if (!script_.empty()) script_.back().cr8 = cr8;
  return *this;
}

FakeVcpu& FakeVcpu::then_fill(std::function<void(std::span<std::uint8_t>)> fill) {
  std::lock_guard lock(mu_);
  if (!script_.empty()) script_.back().fill = std::move(fill);
  return *this;
}

FakeVcpu& FakeVcpu::then(std::function<void()> before) {
  std::lock_guard lock(mu_);
  if (!script_.empty()) script_.back().before = std::move(before);
  return *this;
}

// The answer the run loop gave to a read (or the MSR write's #GP flag).
static std::optional<CompletedRead> completion_of(const ScriptedExit& c) {
  CompletedRead r{c.exit.kind, 0, c.data, c.msr_data, c.msr_error};
  switch (c.exit.kind) {
    case ExitKind::kIo:
      if (c.exit.io.is_write) return std::nullopt;
      r.address = c.exit.io.port;
      return r;
    case ExitKind::kMmio:
      if (c.exit.mmio.is_write) return std::nullopt;
      r.address = c.exit.mmio.gpa.value();
      return r;
    case ExitKind::kRdmsr:
    case ExitKind::kWrmsr:
      r.address = c.exit.msr.index;
      return r;
    default:
      return std::nullopt;
  }
}

void FakeVcpu::record_completion() {
  if (!current_) return;
  if (auto r = completion_of(*current_)) completed_.push_back(std::move(*r));
  current_.reset();
}

Result<VcpuExit> FakeVcpu::run() {
  std::function<void()> before;
  std::function<void(std::span<std::uint8_t>)> fill;
  std::span<std::uint8_t> bytes;
  VcpuExit out;
  {
    std::lock_guard lock(mu_);
    ++runs_;
    record_completion();
    window_requests_.push_back(window_);
    cr8_at_entries_.push_back(cr8_);
    if (queued_vector_) {  // the "guest" takes the queued interrupt on entry
      injected_.push_back(*queued_vector_);
      queued_vector_.reset();
    }
    if (kick_pending_.exchange(false)) {  // immediate_exit: no guest code runs
      out.kind = ExitKind::kInterrupted;
      out.ready_for_interrupt_injection = out.if_flag = last_ready_;
      out.cr8 = cr8_;
      return out;
    }
    if (script_.empty())
      return make_error(Errc::kNotFound,
                        fmt::format("FakeVcpu {}: script exhausted after {} runs", id_, runs_));
    current_ = std::move(script_.front());
    script_.pop_front();
    auto& c = *current_;
    c.exit.msr.error = &c.msr_error;
    c.exit.msr.data = &c.msr_data;
    c.exit.io.data = c.data;
    c.exit.mmio.data = c.data;
    last_ready_ = c.exit.ready_for_interrupt_injection;
    if (c.cr8) cr8_ = *c.cr8 & 0xF;  // like KVM: CR8 as the guest left it
    c.exit.cr8 = cr8_;
    before = c.before;
    fill = c.fill;
    bytes = c.data;
    out = c.exit;
  }
  if (before) before();  // outside the lock: it may call kick() or deliver IPIs
  if (fill) fill(bytes);  // only this thread touches the current exit's bytes
  return out;
}

void FakeVcpu::kick() {
  kicks_.fetch_add(1);
  kick_pending_.store(true);
}

void FakeVcpu::request_interrupt_window(bool on) {
  std::lock_guard lock(mu_);
  window_ = on;
}

void FakeVcpu::set_cr8(std::uint8_t cr8) {
  std::lock_guard lock(mu_);
  cr8_ = cr8 & 0xF;
}

Result<void> FakeVcpu::inject_interrupt(std::uint8_t vector) {
  if (on_inject) on_inject();
  std::lock_guard lock(mu_);
  if (!last_ready_) ++bad_injections_;
  if (queued_vector_)  // KVM: -EEXIST while one is still queued
    return Error::from_errno("KVM_INTERRUPT (fake): one already queued", EEXIST);
  queued_vector_ = vector;
  return ok();
}

Result<void> FakeVcpu::inject_nmi() {
  std::lock_guard lock(mu_);
  ++nmis_;
  return ok();
}

std::vector<std::uint8_t> FakeVcpu::injected() const {
  std::lock_guard lock(mu_);
  return injected_;
}
int FakeVcpu::nmis() const {
  std::lock_guard lock(mu_);
  return nmis_;
}
std::vector<bool> FakeVcpu::window_requests() const {
  std::lock_guard lock(mu_);
  return window_requests_;
}
std::vector<CompletedRead> FakeVcpu::completed_reads() const {
  std::lock_guard lock(mu_);
  auto out = completed_;
  // The last exit's answer has not been consumed by a run() yet: include it.
  if (current_)
    if (auto r = completion_of(*current_)) out.push_back(std::move(*r));
  return out;
}
std::vector<std::uint8_t> FakeVcpu::cr8_at_entries() const {
  std::lock_guard lock(mu_);
  return cr8_at_entries_;
}
int FakeVcpu::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}
int FakeVcpu::bad_injections() const {
  std::lock_guard lock(mu_);
  return bad_injections_;
}
std::size_t FakeVcpu::remaining() const {
  std::lock_guard lock(mu_);
  return script_.size();
}

Result<void> FakeVcpu::set_cpuid(const CpuidEntries& e) { cpuid = e; return ok(); }
Result<CpuidEntries> FakeVcpu::get_cpuid() { return cpuid; }
Result<kvm_regs> FakeVcpu::get_regs() { return regs; }
Result<void> FakeVcpu::set_regs(const kvm_regs& v) { regs = v; return ok(); }
Result<kvm_sregs> FakeVcpu::get_sregs() { return sregs; }
Result<void> FakeVcpu::set_sregs(const kvm_sregs& v) { sregs = v; return ok(); }
Result<kvm_fpu> FakeVcpu::get_fpu() { return fpu; }
Result<void> FakeVcpu::set_fpu(const kvm_fpu& v) { fpu = v; return ok(); }
Result<XsaveArea> FakeVcpu::get_xsave() { return xsave; }
Result<void> FakeVcpu::set_xsave(const XsaveArea& v) { xsave = v; return ok(); }
Result<kvm_xcrs> FakeVcpu::get_xcrs() { return xcrs; }
Result<void> FakeVcpu::set_xcrs(const kvm_xcrs& v) { xcrs = v; return ok(); }
Result<kvm_vcpu_events> FakeVcpu::get_events() { return events; }
Result<void> FakeVcpu::set_events(const kvm_vcpu_events& v) { events = v; return ok(); }
Result<kvm_mp_state> FakeVcpu::get_mp_state() { return mp_state; }
Result<void> FakeVcpu::set_mp_state(const kvm_mp_state& v) { mp_state = v; return ok(); }
Result<kvm_debugregs> FakeVcpu::get_debugregs() { return debugregs; }
Result<void> FakeVcpu::set_debugregs(const kvm_debugregs& v) { debugregs = v; return ok(); }

Result<std::vector<kvm_msr_entry>> FakeVcpu::get_msrs(const std::vector<std::uint32_t>& indices) {
  std::vector<kvm_msr_entry> out;
  for (auto i : indices) {
    auto it = msrs.find(i);
    if (it == msrs.end()) continue;  // like KVM: unknown MSRs are left out
    kvm_msr_entry e{};
    e.index = i;
    e.data = it->second;
    out.push_back(e);
  }
  return out;
}

Result<void> FakeVcpu::set_msrs(const std::vector<kvm_msr_entry>& list) {
  for (const auto& e : list) {
    if (refuse_msr && e.index == *refuse_msr)
      return make_error(Errc::kSystem, fmt::format("KVM_SET_MSRS (fake): refused {:#x}", e.index));
    msrs[e.index] = e.data;
  }
  return ok();
}

}  // namespace ssi::vcpu::testing
