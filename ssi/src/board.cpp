#include "ssi/board.hpp"

#include "ssi/kvm_entry.hpp"

namespace ssi::machine {

Board::Board(int console_fd, vcpu::ExitRequest& exit)
    : console_(console_fd),
      uart_([this](char c) { console_.put(c); }),
      qemu_exit_(DebugExit::Convention::kQemu, exit),
      ssi_exit_(DebugExit::Convention::kDirect, exit),
      io_(pio_, mmio_) {}

Result<void> Board::attach() {
  SSI_TRY(pio_.add("com1", kCom1Port, kUartPorts, &uart_));
  SSI_TRY(pio_.add("isa-debug-exit", kQemuDebugExitPort, kQemuDebugExitPorts, &qemu_exit_));
  SSI_TRY(pio_.add("pic-master", kPicMasterPort, kPicPorts, &pic_master_));
  SSI_TRY(pio_.add("pic-slave", kPicSlavePort, kPicPorts, &pic_slave_));
  SSI_TRY(mmio_.add("ioapic", kIoapicBase, kIoapicSize, &ioapic_));
  return pio_.add("ssi-exit", kSsiExitPort, kSsiExitPorts, &ssi_exit_);
}

void Board::connect_interrupts(vcpu::IpiSink& sink, std::uint8_t ioapic_id) {
  ioapic_.set_id(ioapic_id);
  ioapic_.set_sink(&sink);
  uart_.set_irq([this](bool high) { ioapic_.set_line(kCom1Irq, high); });
}

Result<void> map_guest_ram(vcpu::Vm& vm, const MemoryMap& map, std::span<std::uint8_t> ram) {
  std::uint32_t slot = 0;
  for (const Region& r : map.regions()) {
    if (r.kind != RegionKind::kRam && r.kind != RegionKind::kBootArea) continue;
    SSI_ASSIGN_OR_RETURN(std::uint64_t off, map.ram_offset(r.base, r.size));
    SSI_TRY(vm.add_memory({.slot = slot++, .gpa = r.base, .size = r.size,
                           .host = ram.data() + off}));
  }
  return ok();
}

Result<void> enter(vcpu::Vcpu& v, const EntryState& st) {
  SSI_ASSIGN_OR_RETURN(kvm_sregs base, v.get_sregs());
  SSI_TRY(v.set_sregs(to_kvm_sregs(st, base)));
  return v.set_regs(to_kvm_regs(st));
}

void LocalIpiRouter::send_ipi(const vcpu::Ipi& ipi) {
  for (vcpu::Lapic* l : lapics)
    if (l->targeted_by(ipi)) l->deliver(ipi);
}

}  // namespace ssi::machine
