// Pieces every machine shape assembles the same way: the devices node 0
// owns (COM1 console, debug-exit ports) behind one IoHandler, guest RAM
// registered as KVM memory slots, a vCPU put into a boot EntryState, and
// IPI delivery among the LAPICs of one node. machine::Machine is built
// from these on every node.
#pragma once

#include <functional>
#include <shared_mutex>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "ssi/boot.hpp"
#include "ssi/devices/debug_exit.hpp"
#include "ssi/devices/io_bus.hpp"
#include "ssi/devices/ioapic.hpp"
#include "ssi/devices/pic.hpp"
#include "ssi/devices/rtc.hpp"
#include "ssi/devices/serial.hpp"
#include "ssi/machine_io.hpp"
#include "ssi/memory_map.hpp"
#include "vcpu/io.hpp"
#include "vcpu/kvm.hpp"
#include "vcpu/lapic.hpp"

namespace ssi::machine {

// Where node 0's devices answer: a static layout, the same on every node,
// so a node without devices answers an access nobody claims (reads all-ones,
// writes dropped) without asking node 0.
struct DeviceWindow {
  std::string_view name;
  bool mmio = false;
  std::uint64_t base = 0, size = 0;
};
std::span<const DeviceWindow> board_windows();
// True when [addr, addr + len) lies inside one window of that space.
bool board_claims(bool mmio, std::uint64_t addr, std::uint64_t len);

// Node 0's devices. Thread-safe: vCPU threads and (multi-node) the fibers
// serving forwarded accesses call io() concurrently; each device locks.
class Board {
 public:
  Board(int console_fd, vcpu::ExitRequest& exit);
  Board(const Board&) = delete;
  Board& operator=(const Board&) = delete;

  // Registers the devices at their board_windows() (once, before any vCPU
  // runs); `fw_cfg` (built from the machine's config) is not owned.
  Result<void> attach(IoDevice& fw_cfg);
  // Interrupts: the IOAPIC (id as in the MADT) delivers through `sink`, and
  // COM1 drives its pin 4. Before any vCPU runs. Each LAPIC's level-EOI
  // listener should call ioapic().eoi().
  void connect_interrupts(vcpu::IpiSink& sink, std::uint8_t ioapic_id);
  Ioapic& ioapic() { return ioapic_; }
  vcpu::IoHandler& io() { return io_; }
  IoBus& pio() { return pio_; }
  IoBus& mmio() { return mmio_; }
  void flush_console() { console_.flush(); }
  // Checkpoint: COM1, IOAPIC, both PICs and the RTC (debug-exit has no state).
  void save_devices(StateWriter& w);
  bool restore_devices(StateReader& r);
  // Called with each complete console line (e.g. a checkpoint trigger);
  // before any vCPU runs. Runs on a vCPU thread: must not block.
  void set_console_observer(std::function<void(std::string_view)> f) {
    console_.set_observer(std::move(f));
  }
  std::uint64_t unclaimed() const { return io_.unclaimed(); }

 private:
  LineWriter console_;
  Serial16550 uart_;
  DebugExit qemu_exit_;
  DebugExit ssi_exit_;
  Ioapic ioapic_;
  Pic8259 pic_master_, pic_slave_;
  Rtc rtc_;
  IoBus pio_{"pio"};
  IoBus mmio_{"mmio"};
  MachineIo io_;
};

// Registers every RAM / boot-area region of `map` as a memory slot backed by
// `ram` (map.ram_bytes() long: anonymous memory or the node's DSM region).
Result<void> map_guest_ram(vcpu::Vm& vm, const MemoryMap& map, std::span<std::uint8_t> ram);

// Loads `st` into the vCPU's registers (before its first KVM_RUN, or at SIPI).
Result<void> enter(vcpu::Vcpu& v, const EntryState& st);

// Delivers an IPI to every LAPIC of this node that it targets.
class LocalIpiRouter final : public vcpu::IpiSink {
 public:
  // Takes the IPIs of a diverted LAPIC: `origin` is the node the IPI came
  // from (deliver's argument), `lapic` the diverted one.
  using Divert = std::function<void(const vcpu::Ipi&, std::uint32_t origin, vcpu::Lapic& lapic)>;
  void send_ipi(const vcpu::Ipi& ipi) override;
  // Set before any vCPU runs; afterwards only through the calls below.
  std::vector<vcpu::Lapic*> lapics;

  // With shared() held: `ipi` to every LAPIC here it targets; a diverted
  // LAPIC's Divert gets it instead, with `origin`.
  void deliver(const vcpu::Ipi& ipi, std::uint32_t origin);
  // Runs `f` under the router's lock, shared with deliveries (a caller's
  // routing decision and its delivery are then one step) or exclusive.
  void shared(const std::function<void()>& f);
  void exclusive(const std::function<void()>& f);

  // vCPU mobility, thread-safe against deliveries: a LAPIC joins this node;
  // a LAPIC's IPIs go to `to` instead (replacing an earlier divert of it;
  // atomically: none is both delivered and diverted); `end_divert` puts it
  // back. `then` runs under the same exclusive lock, so whatever it sends
  // is ordered before any later IPI.
  void add(vcpu::Lapic* lapic);
  void divert(vcpu::Lapic* lapic, Divert to, const std::function<void()>& then = {});
  void end_divert(vcpu::Lapic* lapic, const std::function<void()>& then);

 private:
  std::shared_mutex mu_;
  std::vector<std::pair<vcpu::Lapic*, Divert>> diverted_;
};

}  // namespace ssi::machine
