#include "machine_impl.hpp"

namespace ssi::machine {

Machine::Machine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Machine::~Machine() = default;

Result<std::unique_ptr<Machine>> Machine::create(vcpu::Vm& vm, const MachineConfig& config,
                                                 const MachineFabric& fabric) {
  if (fabric.ram.size() != config.map.ram_bytes())
    return make_error(Errc::kInvalidArgument,
                      fmt::format("guest RAM of {} bytes for a map of {}", fabric.ram.size(),
                                  config.map.ram_bytes()));
  auto impl = std::make_unique<Impl>(config, fabric);
  SSI_TRY(impl->init(vm));
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Result<std::unique_ptr<Machine>> Machine::create(vcpu::Hypervisor& hv, const MachineConfig& config) {
  SSI_ASSIGN_OR_RETURN(AnonymousRam ram, AnonymousRam::map(config.map.ram_bytes()));
  SSI_ASSIGN_OR_RETURN(auto vm, hv.create_vm({}));
  MachineConfig c = config;
  if (c.cpuid.empty()) {
    SSI_ASSIGN_OR_RETURN(vcpu::CpuidEntries supported, hv.supported_cpuid());
    c.cpuid = vcpu::filter_cpuid(std::move(supported), vcpu::CpuidPolicy{});
  }
  auto impl = std::make_unique<Impl>(c, MachineFabric{.ram = ram.span()});
  impl->own_ram.emplace(std::move(ram));
  impl->own_vm = std::move(vm);
  SSI_TRY(impl->init(*impl->own_vm));
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Result<void> Machine::load(const KernelImage* kernel) { return impl_->load(kernel); }
Result<int> Machine::run() { return impl_->run(); }
void Machine::request_exit(int code) { impl_->exit.request(code); }
Board* Machine::board() { return impl_->board.get(); }
Counters Machine::stats() const { return impl_->stats(); }
std::uint64_t Machine::tsc_khz() const { return impl_->tsc_khz.load(); }

std::span<std::uint8_t> Machine::ram() { return impl_->ram; }

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

}  // namespace ssi::machine
