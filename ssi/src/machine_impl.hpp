// Machine::Impl, shared by machine.cpp (creation, boot, run loop) and
// machine_state.cpp (vCPU state leaving and entering: moves, checkpoints).
// Private to ssi/src.
#pragma once

#include "ssi/machine.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "base/clock.hpp"
#include "ssi/acpi.hpp"
#include "ssi/boot.hpp"
#include "ssi/devices/fw_cfg.hpp"
#include "ssi/guest_ram.hpp"
#include "ssi/insn_fallback.hpp"
#include "ssi/kvm_entry.hpp"
#include "ssi/node_port.hpp"
#include "vcpu/lapic.hpp"
#include "vcpu/runner.hpp"
#include "vcpu/timer.hpp"

namespace ssi::machine {

namespace machine_detail {

// Anonymous guest RAM: the RAM backend of a machine that is not given one.
class AnonymousRam {
 public:
  static Result<AnonymousRam> map(std::uint64_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Error::from_errno(fmt::format("mmap {} bytes of guest RAM", bytes));
    return AnonymousRam(static_cast<std::uint8_t*>(p), bytes);
  }
  AnonymousRam(AnonymousRam&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  AnonymousRam& operator=(AnonymousRam&&) = delete;
  ~AnonymousRam() {
    if (p_) ::munmap(p_, n_);
  }
  std::span<std::uint8_t> span() const { return {p_, n_}; }

 private:
  AnonymousRam(std::uint8_t* p, std::uint64_t n) : p_(p), n_(n) {}
  std::uint8_t* p_;
  std::uint64_t n_;
};

inline std::uint32_t node_of(const MachineConfig& c, std::uint32_t vcpu) {
  return c.vcpu_node.empty() ? 0 : c.vcpu_node.at(vcpu);
}

}  // namespace machine_detail
using machine_detail::AnonymousRam;
using machine_detail::node_of;

struct Machine::Impl {
  struct Cpu {
    std::uint32_t index = 0;
    std::unique_ptr<vcpu::Vcpu> vcpu;
    std::unique_ptr<vcpu::Lapic> lapic;
    std::unique_ptr<vcpu::VcpuRunner> runner;
    std::thread thread;  // while run() runs it here
    Counters carried;    // counted on other nodes before it came here (vcpu_counters)
  };

  Impl(const MachineConfig& c, const MachineFabric& f)
      : config(c), ram(f.ram),
        exit(f.exit ? *f.exit : own_exit),
        local_ipis(f.local_ipis ? *f.local_ipis : own_local_ipis),
        ipis(f.ipis ? *f.ipis : static_cast<vcpu::IpiSink&>(local_ipis)),
        timers([this](VcpuId id) { notify(id); }) {
    if (f.remote_io) {
      io = f.remote_io;
      remote_eoi = f.remote_eoi;
    } else {
      board = std::make_unique<Board>(c.console_fd, exit);
      io = &board->io();
    }
    node_io = std::make_unique<NodePortIo>(*io, c.self.value());
  }

  Result<void> init(vcpu::Vm& vm) {
    if (config.vcpus == 0 || config.nodes == 0 || config.self.value() >= config.nodes + config.standby ||
        (!config.vcpu_node.empty() && config.vcpu_node.size() != config.vcpus))
      return make_error(Errc::kInvalidArgument,
                        fmt::format("node {} of {} with {} vCPUs and a placement of {}",
                                    config.self.value(), config.nodes, config.vcpus,
                                    config.vcpu_node.size()));
    SSI_ASSIGN_OR_RETURN(guest_ram, GuestRam::make(config.map, ram));
    if (board) SSI_TRY(attach_board());
    SSI_TRY(map_guest_ram(vm, config.map, ram));
    this->vm = &vm;
    by_vcpu.assign(config.vcpus, nullptr);
    for (std::uint32_t i = 0; i < config.vcpus; ++i)
      if (node_of(config, i) == config.self.value()) SSI_TRY(add_vcpu(vm, i));
    return ok();
  }

  Result<void> attach_board() {
    board->connect_interrupts(ipis, static_cast<std::uint8_t>(config.vcpus));  // MADT's IOAPIC id
    FwCfgConfig fc{.ram_bytes = config.map.ram_bytes(),
                   .cpus = static_cast<std::uint16_t>(config.vcpus)};
    if (config.nodes > 1) {  // the NUMA item: the same placement and split as the SRAT
      fc.cpu_node = config.vcpu_node;
      for (const auto& ranges : node_memory(config.map, config.nodes)) {
        std::uint64_t bytes = 0;
        for (const auto& r : ranges) bytes += r.size;
        fc.node_bytes.push_back(bytes);
      }
    }
    fw_cfg.emplace(fc);
    return board->attach(*fw_cfg);
  }

  Result<void> add_vcpu(vcpu::Vm& vm, std::uint32_t i) {
    SSI_ASSIGN_OR_RETURN(auto cpu, make_cpu(vm, i));
    local_ipis.lapics.push_back(cpu->lapic.get());
    make_runner(*cpu);
    by_vcpu[i] = cpu.get();
    cpus.push_back(std::move(cpu));
    return ok();
  }

  // A KVM vCPU and its LAPIC (not yet reachable by IPIs) for vCPU `i`.
  Result<std::unique_ptr<Cpu>> make_cpu(vcpu::Vm& vm, std::uint32_t i) {
    auto cpu = std::make_unique<Cpu>();
    cpu->index = i;
    SSI_ASSIGN_OR_RETURN(cpu->vcpu, vm.create_vcpu(VcpuId{i}));
    if (auto khz = cpu->vcpu->get_tsc_khz(); khz.ok() && tsc_khz.load() == 0) tsc_khz.store(*khz);
    if (!config.cpuid.empty())
      SSI_TRY(cpu->vcpu->set_cpuid(vcpu::set_cpuid_apic_id(config.cpuid, i)));
    if (config.tsc_epoch_ns != 0) SSI_TRY(vcpu::set_tsc_from_epoch(*cpu->vcpu, config.tsc_epoch_ns));
    vcpu::LapicConfig lc;
    lc.vcpu = VcpuId{i};
    lc.apic_id = i;
    lc.bsp = i == 0;
    cpu->lapic = std::make_unique<vcpu::Lapic>(lc, SteadyClock::instance(), ipis, &timers);
    // Level-triggered EOIs reach the IOAPIC: here, or on the device node.
    if (board)
      cpu->lapic->set_level_eoi([this](std::uint8_t v) { board->ioapic().eoi(v); });
    else if (remote_eoi)
      cpu->lapic->set_level_eoi(remote_eoi);
    return cpu;
  }

  void make_runner(Cpu& c) {
    const std::uint32_t i = c.index;
    vcpu::RunnerOptions ro;
    ro.on_internal_error = handle_internal_error;
    if (config.kernel == KernelKind::kSsiElf) {
      // ssi boot convention: SIPI starts the AP in long mode (boot_info.h),
      // from the boot info the device node wrote (read through the DSM on
      // the other nodes).
      ro.on_sipi = [this, i](vcpu::Vcpu& v, std::uint8_t vector) -> Result<void> {
        SSI_ASSIGN_OR_RETURN(BootLayout layout, read_boot_layout(*guest_ram));
        SSI_ASSIGN_OR_RETURN(EntryState st, layout.ap_state(i, vector));
        return enter(v, st);
      };
    }
    c.runner = std::make_unique<vcpu::VcpuRunner>(*c.vcpu, *c.lapic, *node_io, exit,
                                                  SteadyClock::instance(), std::move(ro));
  }

  // vCPU mobility: below.
  Result<vcpu::CpuState> emigrate(std::uint32_t i, LocalIpiRouter::Divert divert,
                                  std::chrono::milliseconds timeout);
  Result<void> immigrate(std::uint32_t i, const vcpu::CpuState& state,
                         LocalIpiRouter::Divert gate,
                         const std::function<void(vcpu::Lapic&)>& admitted, Counters carried);

  Result<void> load(const KernelImage* k) {
    if (!board) return make_error(Errc::kInvalidArgument, "only the device node loads the kernel");
    EntryState bsp;
    if (k && k->kind != KernelKind::kSsiElf) {
      // The BSP's TSC rate: Linux is told it (linux_command_line).
      std::uint64_t tsc_khz = 0;
      if (by_vcpu[0]) {
        if (auto khz = by_vcpu[0]->vcpu->get_tsc_khz(); khz.ok()) tsc_khz = *khz;
      }
      SSI_ASSIGN_OR_RETURN(BootPlan plan,
                           load_foreign_kernel(k->kind, k->file, *guest_ram,
                                               k->foreign(config.vcpu_node, tsc_khz)));
      bsp = plan.bsp;
    } else {
      if (k) SSI_TRY(load_elf(k->elf, k->file, *guest_ram));
      SSI_ASSIGN_OR_RETURN(BootLayout layout,
                           build_boot_area(*guest_ram, {.cpu_count = config.vcpus,
                                                        .node_count = config.nodes,
                                                        .cpu_node = config.vcpu_node,
                                                        .node_ram_start = config.node_ram_start,
                                                        .kernel_entry = k ? k->elf.entry : 0,
                                                        .kernel_end = k ? k->elf.end() : 0}));
      bsp = layout.bsp_state();
    }
    if (by_vcpu[0]) SSI_TRY(enter(*by_vcpu[0]->vcpu, bsp));
    return ok();
  }

  Result<int> run() {
    auto t0 = SteadyClock::instance().now();
    {
      std::lock_guard lock(cpus_mu);
      running = true;
      for (auto& cpu : cpus) start(*cpu);
    }
    // vCPUs may leave and arrive while it runs (machine_state.cpp); a node
    // may also run none (a placement can leave one empty) and serve the
    // others until the exit: wait for the exit itself, not for threads.
    {
      auto seen = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
      exit.add_listener([seen] {
        std::lock_guard lock(seen->first);
        seen->second.notify_all();
      });
      std::unique_lock lock(seen->first);
      seen->second.wait(lock, [&] { return exit.requested(); });
    }
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(cpus_mu);
      running = false;
      for (auto& cpu : cpus)
        if (cpu->thread.joinable()) threads.push_back(std::move(cpu->thread));
    }
    for (auto& t : threads) t.join();
    run_ns.store(static_cast<std::uint64_t>(
        std::chrono::nanoseconds(SteadyClock::instance().now() - t0).count()));
    if (board) board->flush_console();
    std::lock_guard lock(first_error_mu);
    if (first_error) return std::move(*first_error);
    return exit.exit_code().value_or(0);
  }

  // With cpus_mu held: vCPU `c`'s run loop on a thread of its own.
  void start(Cpu& c) {
    c.thread = std::thread([this, &c] {
      if (config.on_vcpu_thread) config.on_vcpu_thread(c.index);
      auto r = c.runner->run();
      if (r.ok()) return;
      {
        std::lock_guard lock(first_error_mu);
        if (!first_error) {
          first_error = std::move(r).error();
          first_error->message = fmt::format("vcpu {}: {}", c.index, first_error->message);
        }
      }
      exit.request(kVcpuFailed);
    });
  }

  void notify(VcpuId id) {
    std::lock_guard lock(cpus_mu);
    if (id.value() < by_vcpu.size() && by_vcpu[id.value()]) by_vcpu[id.value()]->runner->notify();
  }

  Counters stats() const {
    std::lock_guard lock(cpus_mu);
    vcpu::VcpuRunner::Stats s;
    for (const auto& c : cpus) {
      auto r = c->runner->stats();
      s.exits += r.exits;
      s.injected += r.injected;
      s.halts += r.halts;
    }
    Counters out = {{"vcpus", cpus.size()},
                    {"vcpu_run_ms", run_ns.load() / 1'000'000},
                    {"vcpu_exits", s.exits},
                    {"interrupts_injected", s.injected},
                    {"halts", s.halts}};
    // The guest's TSC rate: turns cycles a guest measured into time. Read
    // when the vCPU was made: a vCPU ioctl waits for KVM_RUN to return, and
    // cpus_mu (held here) must never wait on a guest.
    if (auto khz = tsc_khz.load(); khz != 0) out.emplace_back("guest_tsc_khz", khz);
    // Per vCPU as "vcpu<N>.<counter>" (the --json file groups them).
    for (const auto& c : cpus) {
      std::string p = "vcpu" + std::to_string(c->index) + ".";
      for (auto& [name, value] : vcpu_counters(*c)) out.emplace_back(p + name, value);
    }
    return out;
  }

  // One vCPU's counters since the machine started: its runner's here plus
  // what it counted on the nodes it ran on before (a move carries them).
  static Counters vcpu_counters(const Cpu& c) {
    Counters out;
    if (c.runner) {
      auto r = c.runner->stats();
      out = {{"run_ns", r.run_ns}, {"exits", r.exits}, {"interrupts_injected", r.injected},
             {"halts", r.halts}, {"kicks", r.kicks}};
      for (std::size_t k = 0; k < r.exits_by_kind.size(); ++k)
        if (r.exits_by_kind[k] != 0)
          out.emplace_back("exits_" + std::string(vcpu::exit_kind_name(static_cast<vcpu::ExitKind>(k))),
                           r.exits_by_kind[k]);
    }
    for (const auto& [name, value] : c.carried) {
      auto it = std::find_if(out.begin(), out.end(), [&](const auto& e) { return e.first == name; });
      if (it != out.end())
        it->second += value;
      else
        out.emplace_back(name, value);
    }
    return out;
  }

  // One-node convenience (create(hv, ...)): the RAM and VM the machine owns.
  // First members: destroyed after the vCPUs that use them.
  std::optional<AnonymousRam> own_ram;
  std::unique_ptr<vcpu::Vm> own_vm;

  MachineConfig config;
  std::span<std::uint8_t> ram;
  std::optional<GuestRam> guest_ram;
  vcpu::ExitRequest own_exit;
  vcpu::ExitRequest& exit;
  LocalIpiRouter own_local_ipis;
  LocalIpiRouter& local_ipis;
  vcpu::IpiSink& ipis;
  std::unique_ptr<Board> board;  // device node only
  std::optional<FwCfg> fw_cfg;
  vcpu::IoHandler* io = nullptr;  // the board's, or the fabric's forwarder
  std::function<void(std::uint8_t)> remote_eoi;  // off the device node
  std::unique_ptr<NodePortIo> node_io;  // what the runners use: kNodePort, then `io`
  vcpu::Vm* vm = nullptr;
  mutable std::mutex cpus_mu;  // cpus, by_vcpu, parked, running, each Cpu's thread
  bool running = false;
  std::vector<std::unique_ptr<Cpu>> cpus;
  std::vector<Cpu*> by_vcpu;
  // vCPUs that left this node: their KVM vCPU stays (an id cannot be
  // created twice in one VM) for when they come back.
  std::vector<std::unique_ptr<Cpu>> parked;
  std::mutex first_error_mu;
  std::optional<Error> first_error;
  std::atomic<std::uint64_t> run_ns{0};
  std::atomic<std::uint64_t> tsc_khz{0};  // of this node's first vCPU (stats)
  vcpu::TimerThread timers;  // last: its thread calls notify() until it is destroyed
};

}  // namespace ssi::machine
