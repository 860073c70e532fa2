#include "ssi/board.hpp"

#include <fmt/format.h>

#include "ssi/devices/fw_cfg.hpp"
#include "ssi/kvm_entry.hpp"

namespace ssi::machine {

namespace {
constexpr DeviceWindow kWindows[] = {
    {"pic-master", false, kPicMasterPort, kPicPorts},
    {"pic-slave", false, kPicSlavePort, kPicPorts},
    {"isa-debug-exit", false, kQemuDebugExitPort, kQemuDebugExitPorts},
    {"ssi-exit", false, kSsiExitPort, kSsiExitPorts},
    {"com1", false, kCom1Port, kUartPorts},
    {"rtc", false, kRtcPort, kRtcPorts},
    {"fw_cfg", false, kFwCfgPort, kFwCfgPorts},
    {"ioapic", true, kIoapicBase, kIoapicSize},
};
}  // namespace

std::span<const DeviceWindow> board_windows() { return kWindows; }

bool board_claims(bool mmio, std::uint64_t addr, std::uint64_t len) {
  for (const DeviceWindow& w : kWindows)
    if (w.mmio == mmio && addr >= w.base && addr - w.base < w.size && len <= w.size - (addr - w.base))
      return true;
  return false;
}

Board::Board(int console_fd, vcpu::ExitRequest& exit)
    : console_(console_fd),
      uart_([this](char c) { console_.put(c); }),
      qemu_exit_(DebugExit::Convention::kQemu, exit),
      ssi_exit_(DebugExit::Convention::kDirect, exit),
      io_(pio_, mmio_) {}

Result<void> Board::attach(IoDevice& fw_cfg) {
  const std::pair<std::string_view, IoDevice*> devices[] = {
      {"pic-master", &pic_master_}, {"pic-slave", &pic_slave_}, {"isa-debug-exit", &qemu_exit_},
      {"ssi-exit", &ssi_exit_},     {"com1", &uart_},           {"fw_cfg", &fw_cfg},
      {"ioapic", &ioapic_},         {"rtc", &rtc_}};
  for (const DeviceWindow& w : kWindows) {
    IoDevice* d = nullptr;
    for (const auto& [name, dev] : devices)
      if (name == w.name) d = dev;
    if (!d) return make_error(Errc::kInternal, fmt::format("no device for window {}", w.name));
    SSI_TRY((w.mmio ? mmio_ : pio_).add(w.name, w.base, w.size, d));
  }
  return ok();
}

void Board::connect_interrupts(vcpu::IpiSink& sink, std::uint8_t ioapic_id) {
  ioapic_.set_id(ioapic_id);
  ioapic_.set_sink(&sink);
  uart_.set_irq([this](bool high) { ioapic_.set_line(kCom1Irq, high); });
}

void Board::save_devices(StateWriter& w) {
  uart_.save(w);
  ioapic_.save(w);
  pic_master_.save(w);
  pic_slave_.save(w);
  rtc_.save(w);
}

bool Board::restore_devices(StateReader& r) {
  if (!(uart_.restore(r) && ioapic_.restore(r) && pic_master_.restore(r) && pic_slave_.restore(r)))
    return false;
  // A checkpoint from before the RTC ends here: its clock starts from the host's.
  return r.at_end() || rtc_.restore(r);
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
  std::shared_lock lock(mu_);
  deliver(ipi, 0);
}

void LocalIpiRouter::deliver(const vcpu::Ipi& ipi, std::uint32_t origin) {
  for (vcpu::Lapic* l : lapics)
    if (l->targeted_by(ipi)) l->deliver(ipi);
  for (const auto& [l, to] : diverted_)
    if (l->targeted_by(ipi)) to(ipi, origin, *l);
}

void LocalIpiRouter::shared(const std::function<void()>& f) {
  std::shared_lock lock(mu_);
  f();
}

void LocalIpiRouter::exclusive(const std::function<void()>& f) {
  std::unique_lock lock(mu_);
  f();
}

void LocalIpiRouter::add(vcpu::Lapic* lapic) {
  std::unique_lock lock(mu_);
  lapics.push_back(lapic);
}

void LocalIpiRouter::divert(vcpu::Lapic* lapic, Divert to, const std::function<void()>& then) {
  std::unique_lock lock(mu_);
  std::erase(lapics, lapic);
  std::erase_if(diverted_, [lapic](const auto& d) { return d.first == lapic; });
  diverted_.emplace_back(lapic, std::move(to));
  if (then) then();
}

void LocalIpiRouter::end_divert(vcpu::Lapic* lapic, const std::function<void()>& then) {
  std::unique_lock lock(mu_);
  std::erase_if(diverted_, [lapic](const auto& d) { return d.first == lapic; });
  if (then) then();
}

}  // namespace ssi::machine
