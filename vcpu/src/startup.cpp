// Register state for INIT/SIPI and the TSC sample: pure helpers the run loop
// and machines use, kept apart from the loop itself.
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

Result<void> set_tsc_from_epoch(Vcpu& vcpu, std::int64_t epoch_realtime_ns) {
  SSI_ASSIGN_OR_RETURN(std::uint64_t khz, vcpu.get_tsc_khz());
  std::int64_t ns = realtime_ns() - epoch_realtime_ns;
  if (ns < 0) ns = 0;  // this node's clock is behind the epoch's
  kvm_msr_entry tsc{};
  tsc.index = 0x10;
  tsc.data = static_cast<std::uint64_t>(static_cast<unsigned __int128>(ns) * khz / 1'000'000);
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
