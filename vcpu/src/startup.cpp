// Register state for INIT/SIPI and the TSC sample: pure helpers the run loop
// and machines use, kept apart from the loop itself.
#include <mutex>

#include "base/log.hpp"
#include "vcpu/runner.hpp"

namespace ssi::vcpu {

kvm_sregs sipi_sregs(kvm_sregs s, std::uint8_t vector) {
  auto real_seg = [](kvm_segment& seg, std::uint16_t selector, std::uint8_t type) {
    seg = kvm_segment{};
    seg.selector = selector;
    seg.base = static_cast<std::uint64_t>(selector) << 4;
    seg.limit = 0xFFFF;
    seg.type = type;
    seg.present = 1;
    seg.s = 1;
  };
  real_seg(s.cs, static_cast<std::uint16_t>(vector << 8), 0xB);  // code, read, accessed
  for (kvm_segment* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) real_seg(*seg, 0, 0x3);
  s.tr = kvm_segment{};
  s.tr.limit = 0xFFFF;
  s.tr.type = 0xB;
  s.tr.present = 1;
  s.ldt = kvm_segment{};
  s.ldt.limit = 0xFFFF;
  s.ldt.type = 0x2;
  s.ldt.present = 1;
  s.gdt = {0, 0xFFFF, {}};
  s.idt = {0, 0xFFFF, {}};
  s.cr0 = 0x60000010;  // reset value: CD | NW | ET, protection and paging off
  s.cr2 = s.cr3 = s.cr4 = 0;
  s.efer = 0;
  return s;
}

kvm_regs sipi_regs() {
  kvm_regs r{};
  r.rflags = 0x2;
  r.rip = 0;
  return r;
}

namespace {

// The guest TSC the epoch asks for at CLOCK_REALTIME `now`.
std::int64_t tsc_at(std::int64_t now, std::int64_t epoch_realtime_ns, std::uint64_t khz) {
  std::int64_t ns = now - epoch_realtime_ns;
  if (ns < 0) ns = 0;  // this node's clock is behind the epoch's
  return static_cast<std::int64_t>(static_cast<__int128>(ns) * khz / 1'000'000);
}

}  // namespace

Result<void> set_tsc_from_epoch(Vcpu& vcpu, std::int64_t epoch_realtime_ns) {
  SSI_ASSIGN_OR_RETURN(std::uint64_t khz, vcpu.get_tsc_khz());
  SSI_ASSIGN_OR_RETURN(std::optional<std::int64_t> offset, vcpu.get_tsc_offset());
  if (offset) {
    // Exact: guest TSC = host TSC + offset, so move the offset by what the
    // TSC lacks (read between two clock reads, against their midpoint).
    // Where the host's TSC is unstable KVM also re-bases the offset at each
    // ioctl and catches the TSC up from the last one set, so what counts is
    // that the TSC was right at the moment it was set.
    const std::int64_t before = realtime_ns();
    SSI_ASSIGN_OR_RETURN(auto msrs, vcpu.get_msrs({0x10}));
    const std::int64_t after = realtime_ns();
    if (msrs.empty()) return make_error(Errc::kUnsupported, "KVM did not return the TSC MSR");
    const std::int64_t want = tsc_at(before + (after - before) / 2, epoch_realtime_ns, khz);
    return vcpu.set_tsc_offset(*offset + (want - static_cast<std::int64_t>(msrs[0].data)));
  }
  // KVM before 5.16. A host write of MSR 0x10 within a second of what KVM
  // expects (its last write plus the time since) counts as "synchronizing":
  // KVM keeps its old offset instead, or adds the time since its last write
  // where the host's TSC is unstable.
  static std::once_flag warned;
  std::call_once(warned, [] {
    log::get("vcpu")->warn("KVM has no KVM_VCPU_TSC_OFFSET (Linux 5.16+): the TSC epoch is written "
                           "to MSR 0x10, which KVM may replace by a guess up to a second off; the "
                           "nodes' TSCs may then disagree");
  });
  kvm_msr_entry tsc{};
  tsc.index = 0x10;
  tsc.data = static_cast<std::uint64_t>(tsc_at(realtime_ns(), epoch_realtime_ns, khz));
  return vcpu.set_msrs({tsc});
}

Result<TscModel> read_tsc_model(Vcpu& vcpu, const Clock& clock, std::uint64_t tsc_hz) {
  if (tsc_hz == 0) {
    SSI_ASSIGN_OR_RETURN(std::uint64_t khz, vcpu.get_tsc_khz());
    tsc_hz = khz * 1000;
  }
  SSI_ASSIGN_OR_RETURN(auto msrs, vcpu.get_msrs({0x10}));
  // The host time after the read: the TSC was read at or before it, so a
  // deadline computed from this pair can come late by the ioctl's time,
  // never early (SDM 10.5.4.1: the interrupt comes at or after it).
  auto now = clock.now();
  if (msrs.empty()) return make_error(Errc::kUnsupported, "KVM did not return the TSC MSR");
  return TscModel{tsc_hz, now, msrs[0].data};
}

}  // namespace ssi::vcpu
