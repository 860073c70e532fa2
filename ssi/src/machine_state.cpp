// Machine: a vCPU's state leaving and entering this node (live moves,
// docs/mobility.md) and the whole node's state (checkpoints,
// docs/checkpoint.md).
#include <algorithm>

#include "machine_impl.hpp"

namespace ssi::machine {

// Mobility. The vCPU is paused at an exit, its LAPIC is taken out of the
// router (IPIs for it go to `divert`, atomically), then its state is saved:
// no IPI is both in the state and diverted, none is lost.
Result<vcpu::CpuState> Machine::Impl::emigrate(std::uint32_t i, LocalIpiRouter::Divert divert,
                                               std::chrono::milliseconds timeout) {
  Cpu* c = nullptr;
  {
    std::lock_guard lock(cpus_mu);
    if (i < by_vcpu.size()) c = by_vcpu[i];
  }
  if (!c) return make_error(Errc::kNotFound, fmt::format("vCPU {} does not run on node {}", i,
                                                         config.self.value()));
  c->runner->pause();
  if (!c->runner->wait_paused(timeout)) {
    c->runner->resume();
    return make_error(Errc::kTimeout, fmt::format("vCPU {} did not pause within {} ms", i,
                                                  timeout.count()));
  }
  local_ipis.divert(c->lapic.get(), std::move(divert));
  auto state = c->runner->save_state();
  if (!state.ok()) {
    local_ipis.end_divert(c->lapic.get(), [&] { local_ipis.lapics.push_back(c->lapic.get()); });
    c->runner->resume();
    return state.error();
  }
  c->runner->stop();
  std::unique_ptr<Cpu> gone;
  std::thread thread;
  {
    std::lock_guard lock(cpus_mu);
    by_vcpu[i] = nullptr;
    auto it = std::find_if(cpus.begin(), cpus.end(), [c](const auto& p) { return p.get() == c; });
    gone = std::move(*it);
    cpus.erase(it);
    thread = std::move(gone->thread);
  }
  if (thread.joinable()) thread.join();
  gone->carried = vcpu_counters(*gone);  // what Machine::vcpu_stats reports for it now
  gone->runner.reset();
  std::lock_guard lock(cpus_mu);
  parked.push_back(std::move(gone));
  return state;
}

Result<void> Machine::Impl::immigrate(std::uint32_t i, const vcpu::CpuState& state,
                                      LocalIpiRouter::Divert gate,
                                      const std::function<void(vcpu::Lapic&)>& admitted,
                                      Counters carried) {
  if (i >= config.vcpus) return make_error(Errc::kInvalidArgument, fmt::format("no vCPU {}", i));
  std::unique_ptr<Cpu> c;
  {
    std::lock_guard lock(cpus_mu);
    if (by_vcpu[i]) return make_error(Errc::kInvalidArgument,
                                      fmt::format("vCPU {} already runs here", i));
    auto it = std::find_if(parked.begin(), parked.end(), [i](const auto& p) { return p->index == i; });
    if (it != parked.end()) {
      c = std::move(*it);
      parked.erase(it);
    }
  }
  const vcpu::CpuState* from = &state;
  vcpu::CpuState own_cpuid;
  if (!c) {
    SSI_ASSIGN_OR_RETURN(c, make_cpu(*vm, i));
  } else {
    // A KVM vCPU that has run refuses a new CPUID (KVM_SET_CPUID2 after
    // KVM_RUN); it keeps the one it has: the same policy for this APIC id,
    // set at creation (an empty CPUID is not restored).
    own_cpuid = state;
    own_cpuid.cpuid.clear();
    from = &own_cpuid;
  }
  make_runner(*c);
  auto restored = c->runner->restore_state(*from);
  // The saved TSC is where the pause began: go on from the machine's epoch
  // like the vCPUs that did not move, not behind them by the pause.
  if (restored.ok() && config.tsc_epoch_ns != 0)
    restored = vcpu::set_tsc_from_epoch(*c->vcpu, config.tsc_epoch_ns);
  if (!restored.ok()) {
    std::lock_guard lock(cpus_mu);
    parked.push_back(std::move(c));
    return restored;
  }
  c->carried = std::move(carried);
  vcpu::Lapic& lapic = *c->lapic;
  local_ipis.divert(&lapic, std::move(gate), [&] {
    if (admitted) admitted(lapic);
  });
  std::lock_guard lock(cpus_mu);
  by_vcpu[i] = c.get();
  if (running) start(*c);
  cpus.push_back(std::move(c));
  return ok();
}

Result<vcpu::CpuState> Machine::emigrate(std::uint32_t vcpu, LocalIpiRouter::Divert divert,
                                         std::chrono::milliseconds timeout) {
  return impl_->emigrate(vcpu, std::move(divert), timeout);
}
Result<void> Machine::immigrate(std::uint32_t vcpu, const vcpu::CpuState& state,
                               LocalIpiRouter::Divert gate,
                               const std::function<void(vcpu::Lapic&)>& admitted, Counters carried) {
  return impl_->immigrate(vcpu, state, std::move(gate), admitted, std::move(carried));
}
Counters Machine::vcpu_stats(std::uint32_t vcpu) const {
  std::lock_guard lock(impl_->cpus_mu);
  if (vcpu < impl_->by_vcpu.size() && impl_->by_vcpu[vcpu]) return Impl::vcpu_counters(*impl_->by_vcpu[vcpu]);
  for (const auto& c : impl_->parked)
    if (c->index == vcpu) return c->carried;
  return {};
}
void Machine::request_pause() {
  for (auto& c : impl_->cpus) c->runner->pause();
}

bool Machine::pause_vcpus(std::chrono::milliseconds timeout) {
  request_pause();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto& c : impl_->cpus) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!c->runner->wait_paused(std::max(left, std::chrono::milliseconds(1)))) return false;
  }
  return true;
}

void Machine::resume_vcpus() {
  for (auto& c : impl_->cpus) c->runner->resume();
}

Result<std::vector<std::pair<std::uint32_t, vcpu::CpuState>>> Machine::save_vcpus() {
  std::vector<std::pair<std::uint32_t, vcpu::CpuState>> out;
  for (auto& c : impl_->cpus) {
    SSI_ASSIGN_OR_RETURN(vcpu::CpuState s, c->runner->save_state());
    out.emplace_back(c->index, std::move(s));
  }
  return out;
}

Result<std::vector<std::uint8_t>> Machine::save_devices() {
  if (!impl_->board) return make_error(Errc::kInvalidArgument, "only the device node has devices");
  StateWriter w;
  impl_->board->save_devices(w);
  impl_->fw_cfg->save(w);
  return std::move(w.bytes());
}

Result<void> Machine::restore_vcpu(std::uint32_t index, const vcpu::CpuState& state) {
  if (index >= impl_->by_vcpu.size() || !impl_->by_vcpu[index])
    return make_error(Errc::kInvalidArgument, fmt::format("vCPU {} does not run on this node", index));
  SSI_TRY(impl_->by_vcpu[index]->runner->restore_state(state));
  // On several nodes the TSCs follow the machine's epoch (a restore sets it
  // from the checkpoint, docs/checkpoint.md), like a vCPU that moved.
  if (impl_->config.tsc_epoch_ns != 0)
    return vcpu::set_tsc_from_epoch(*impl_->by_vcpu[index]->vcpu, impl_->config.tsc_epoch_ns);
  return ok();
}

Result<void> Machine::restore_devices(std::span<const std::uint8_t> bytes) {
  if (!impl_->board) return make_error(Errc::kInvalidArgument, "only the device node has devices");
  StateReader r(bytes);
  if (!impl_->board->restore_devices(r) || !impl_->fw_cfg->restore(r) || !r.at_end())
    return make_error(Errc::kProtocol, fmt::format("device state of {} bytes does not parse", bytes.size()));
  return ok();
}

}  // namespace ssi::machine
