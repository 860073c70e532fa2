#include "ssi/machine.hpp"

#include <sys/mman.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "ssi/board.hpp"
#include "ssi/boot.hpp"
#include "ssi/devices/debug_exit.hpp"
#include "ssi/devices/fw_cfg.hpp"
#include "ssi/devices/serial.hpp"
#include "ssi/insn_fallback.hpp"
#include "ssi/kvm_entry.hpp"
#include "ssi/machine_io.hpp"
#include "vcpu/lapic.hpp"
#include "vcpu/runner.hpp"
#include "vcpu/timer.hpp"

namespace ssi::machine {

namespace {

// Exit code when a vCPU fails (the Error carries the reason).
constexpr int kVcpuFailed = 1;

// Anonymous guest RAM (the DSM region takes this place in multi-node runs).
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

class SingleNodeMachine final : public Machine {
 public:
  explicit SingleNodeMachine(AnonymousRam ram, int console_fd)
      : ram_(std::move(ram)),
        board_(console_fd, exit_),
        timers_([this](VcpuId id) { notify(id); }) {}

  Result<void> init(vcpu::Hypervisor& hv, const MachineConfig& cfg) {
    SSI_TRY(board_.attach());
    board_.connect_interrupts(router_, static_cast<std::uint8_t>(cfg.vcpus));  // MADT's IOAPIC id

    fw_cfg_.emplace(FwCfgConfig{.ram_bytes = cfg.map.ram_bytes(),
                                .cpus = static_cast<std::uint16_t>(cfg.vcpus)});
    SSI_TRY(board_.pio().add("fw_cfg", kFwCfgPort, kFwCfgPorts, &*fw_cfg_));

    SSI_ASSIGN_OR_RETURN(GuestRam ram, GuestRam::make(cfg.map, ram_.span()));
    if (cfg.load_foreign) {
      SSI_ASSIGN_OR_RETURN(BootPlan plan, cfg.load_foreign(ram));
      bsp_state_ = plan.bsp;
    } else {
      SSI_TRY(load_elf(cfg.kernel, cfg.kernel_file, ram));
      SSI_ASSIGN_OR_RETURN(layout_, build_boot_area(ram, {.cpu_count = cfg.vcpus,
                                                          .kernel_entry = cfg.kernel.entry,
                                                          .kernel_end = cfg.kernel.end()}));
      bsp_state_ = layout_.bsp_state();
      ssi_aps_ = true;
    }
    SSI_ASSIGN_OR_RETURN(vm_, hv.create_vm({}));
    SSI_TRY(map_guest_ram(*vm_, cfg.map, ram_.span()));
    SSI_ASSIGN_OR_RETURN(vcpu::CpuidEntries supported, hv.supported_cpuid());
    supported = vcpu::filter_cpuid(std::move(supported), vcpu::CpuidPolicy{});
    for (std::uint32_t i = 0; i < cfg.vcpus; ++i) SSI_TRY(add_vcpu(i, supported));
    return ok();
  }

  Result<int> run() override {
    std::vector<std::thread> threads;
    std::mutex mu;
    std::optional<Error> first_error;
    for (std::size_t i = 0; i < cpus_.size(); ++i) {
      threads.emplace_back([this, i, &mu, &first_error] {
        auto r = cpus_[i]->runner->run();
        if (!r.ok()) {
          {
            std::lock_guard lock(mu);
            if (!first_error) {
              first_error = std::move(r).error();
              first_error->message = fmt::format("vcpu {}: {}", i, first_error->message);
            }
          }
          exit_.request(kVcpuFailed);
        }
      });
    }
    for (auto& t : threads) t.join();
    board_.flush_console();
    if (first_error) return std::move(*first_error);
    return exit_.exit_code().value_or(0);
  }

  void request_exit(int code) override { exit_.request(code); }

 private:
  struct Cpu {
    std::unique_ptr<vcpu::Vcpu> vcpu;
    std::unique_ptr<vcpu::Lapic> lapic;
    std::unique_ptr<vcpu::VcpuRunner> runner;
  };

  Result<void> add_vcpu(std::uint32_t i, const vcpu::CpuidEntries& cpuid) {
    auto cpu = std::make_unique<Cpu>();
    SSI_ASSIGN_OR_RETURN(cpu->vcpu, vm_->create_vcpu(VcpuId{i}));
    SSI_TRY(cpu->vcpu->set_cpuid(vcpu::set_cpuid_apic_id(cpuid, i)));
    vcpu::LapicConfig lc;
    lc.vcpu = VcpuId{i};
    lc.apic_id = i;
    lc.bsp = i == 0;
    cpu->lapic = std::make_unique<vcpu::Lapic>(lc, SteadyClock::instance(), router_, &timers_);
    router_.lapics.push_back(cpu->lapic.get());
    cpu->lapic->set_level_eoi([this](std::uint8_t v) { board_.ioapic().eoi(v); });
    vcpu::RunnerOptions ro;
    ro.on_internal_error = handle_internal_error;
    if (i == 0) {
      SSI_TRY(enter(*cpu->vcpu, bsp_state_));
    } else if (ssi_aps_) {
      // ssi boot convention: SIPI starts the AP in long mode (boot_info.h).
      ro.on_sipi = [layout = layout_, i](vcpu::Vcpu& v, std::uint8_t vector) -> Result<void> {
        SSI_ASSIGN_OR_RETURN(EntryState st, layout.ap_state(i, vector));
        return enter(v, st);
      };
    }
    cpu->runner = std::make_unique<vcpu::VcpuRunner>(*cpu->vcpu, *cpu->lapic, board_.io(), exit_,
                                                     SteadyClock::instance(), std::move(ro));
    cpus_.push_back(std::move(cpu));
    return ok();
  }

  void notify(VcpuId id) {
    if (id.value() < cpus_.size()) cpus_[id.value()]->runner->notify();
  }

  AnonymousRam ram_;
  vcpu::ExitRequest exit_;
  Board board_;
  LocalIpiRouter router_;
  std::optional<FwCfg> fw_cfg_;
  BootLayout layout_;
  EntryState bsp_state_;
  bool ssi_aps_ = false;  // ELF test kernels: APs enter long mode directly on SIPI
  std::unique_ptr<vcpu::Vm> vm_;
  std::vector<std::unique_ptr<Cpu>> cpus_;
  vcpu::TimerThread timers_;  // last: its thread calls notify() until it is destroyed
};

}  // namespace

StopSignalBlock::StopSignalBlock() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old_);
}

StopSignalBlock::~StopSignalBlock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

Result<int> run_until_exit(Machine& machine) {
  std::atomic<bool> done{false};
  // Waits in bounded slices so it notices the end of the run.
  std::thread watcher([&machine, &done] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    const timespec slice{0, 100'000'000};
    while (!done.load()) {
      int sig = ::sigtimedwait(&set, nullptr, &slice);
      if (sig > 0) {
        machine.request_exit(128 + sig);
        return;
      }
    }
  });
  auto result = machine.run();
  done.store(true);
  watcher.join();
  return result;
}

Result<std::unique_ptr<Machine>> Machine::create(vcpu::Hypervisor& hv, const MachineConfig& cfg) {
  SSI_ASSIGN_OR_RETURN(AnonymousRam ram, AnonymousRam::map(cfg.map.ram_bytes()));
  auto m = std::make_unique<SingleNodeMachine>(std::move(ram), cfg.console_fd);
  SSI_TRY(m->init(hv, cfg));
  return std::unique_ptr<Machine>(std::move(m));
}

}  // namespace ssi::machine
