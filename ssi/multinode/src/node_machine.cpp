#include "multinode/node_machine.hpp"

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "base/clock.hpp"
#include "base/log.hpp"
#include "dsm/home_map.hpp"
#include "multinode/data_path.hpp"
#include "multinode/forwarding_io.hpp"
#include "multinode/ipi_router.hpp"
#include "multinode/wire.hpp"
#include "ssi/boot.hpp"
#include "ssi/guest_ram.hpp"
#include "vcpu/runner.hpp"
#include "vcpu/timer.hpp"

namespace ssi::multinode {

namespace {
constexpr NodeId kDeviceNode{0};
}  // namespace

struct NodeMachine::Impl {
  Impl(const NodeMachineConfig& c, std::span<std::uint8_t> ram, rdma::Reactor& reactor,
       rdma::Transport& transport)
      : config(c), ram_bytes(ram),
        data(reactor, transport, exit, c.forward_timeout),
        router(c.self, config.placement, data, local_router,
               [this](const Error& e) { fail(e); }),
        timers([this](VcpuId id) { notify(id); }) {
    if (c.self == kDeviceNode) {
      board = std::make_unique<machine::Board>(c.console_fd, exit);
      io = &board->io();
    } else {
      forwarding = std::make_unique<ForwardingIo>(kDeviceNode, data);
      io = forwarding.get();
    }
    // The first exit request on this node stops every other node too,
    // unless it came from a peer (that peer told everyone already).
    exit.add_listener([this] {
      if (exit_from_peer.load()) return;
      int code = exit.exit_code().value_or(0);
      for (std::uint32_t n = 0; n < config.placement.nodes; ++n)
        if (n != config.self.value())
          data.post_send(NodeId{n}, rdma::Frame::make(kMachineExit, PageNo{0},
                                                      static_cast<std::uint64_t>(code)));
    });
  }

  struct Cpu {
    std::uint32_t index = 0;
    std::unique_ptr<vcpu::Vcpu> vcpu;
    std::unique_ptr<vcpu::Lapic> lapic;
    std::unique_ptr<vcpu::VcpuRunner> runner;
  };

  Result<void> init(vcpu::Vm& vm) {
    SSI_ASSIGN_OR_RETURN(guest_ram, machine::GuestRam::make(config.map, ram_bytes));
    if (board) SSI_TRY(board->attach());
    SSI_TRY(machine::map_guest_ram(vm, config.map, ram_bytes));
    by_vcpu.assign(config.placement.vcpus(), nullptr);
    for (std::uint32_t i : config.placement.vcpus_on(config.self)) SSI_TRY(add_vcpu(vm, i));
    return ok();
  }

  Result<void> add_vcpu(vcpu::Vm& vm, std::uint32_t i) {
    auto cpu = std::make_unique<Cpu>();
    cpu->index = i;
    SSI_ASSIGN_OR_RETURN(cpu->vcpu, vm.create_vcpu(VcpuId{i}));
    if (!config.cpuid.empty())
      SSI_TRY(cpu->vcpu->set_cpuid(vcpu::set_cpuid_apic_id(config.cpuid, i)));
    vcpu::LapicConfig lc;
    lc.vcpu = VcpuId{i};
    lc.apic_id = i;
    lc.bsp = i == 0;
    cpu->lapic = std::make_unique<vcpu::Lapic>(lc, SteadyClock::instance(), router, &timers);
    local_router.lapics.push_back(cpu->lapic.get());
    vcpu::RunnerOptions ro;
    // ssi boot convention: SIPI starts the AP in long mode (boot_info.h). The
    // layout comes from the boot info node 0 wrote, read through the DSM.
    ro.on_sipi = [this, i](vcpu::Vcpu& v, std::uint8_t vector) -> Result<void> {
      SSI_ASSIGN_OR_RETURN(machine::BootLayout layout, machine::read_boot_layout(*guest_ram));
      SSI_ASSIGN_OR_RETURN(machine::EntryState st, layout.ap_state(i, vector));
      return machine::enter(v, st);
    };
    cpu->runner = std::make_unique<vcpu::VcpuRunner>(*cpu->vcpu, *cpu->lapic, *io, exit,
                                                     SteadyClock::instance(), std::move(ro));
    by_vcpu[i] = cpu.get();
    cpus.push_back(std::move(cpu));
    return ok();
  }

  Result<void> load(std::span<const std::uint8_t> file, const machine::ElfImage* kernel) {
    if (config.self != kDeviceNode)
      return make_error(Errc::kInvalidArgument, "only node 0 loads the kernel");
    if (kernel) SSI_TRY(machine::load_elf(*kernel, file, *guest_ram));
    const auto& p = config.placement;
    // The guest's vNUMA view: the DSM's default homes, equal chunks per node.
    SSI_ASSIGN_OR_RETURN(dsm::HomeMap homes,
                         dsm::HomeMap::equal_chunks(config.map.ram_bytes() / kPageSize, p.nodes));
    std::vector<std::uint64_t> node_ram;
    for (const auto& r : homes.ranges()) node_ram.push_back(r.first.value() * kPageSize);
    SSI_ASSIGN_OR_RETURN(machine::BootLayout layout,
                         machine::build_boot_area(*guest_ram, {.cpu_count = p.vcpus(),
                                                               .node_count = p.nodes,
                                                               .cpu_node = p.vcpu_node,
                                                               .node_ram_start = node_ram,
                                                               .kernel_entry = kernel ? kernel->entry : 0,
                                                               .kernel_end = kernel ? kernel->end() : 0}));
    if (by_vcpu[0]) SSI_TRY(machine::enter(*by_vcpu[0]->vcpu, layout.bsp_state()));
    return ok();
  }

  void deliver(rdma::Frame&& f) {
    switch (f.header.type) {
      case kIoRequest:
        return serve_io(f);
      case kIpi: {
        auto ipi = decode_ipi(f);
        if (ipi.ok()) return router.receive(*ipi);
        log::get("machine")->warn("bad IPI frame from node {}: {}", f.header.src,
                                  ipi.error().to_string());
        return;
      }
      case kMachineExit:
        exit_from_peer.store(true);
        exit.request(static_cast<int>(f.header.arg0));
        return;
      default:
        log::get("machine")->warn("unknown machine frame {:#x} from node {}", f.header.type,
                                  f.header.src);
    }
  }

  // Node 0, in a reactor fiber: one forwarded access, answered at once.
  void serve_io(const rdma::Frame& f) {
    auto a = decode_io(f);
    Result<void> r = a.ok() ? Result<void>(ok()) : Result<void>(a.error());
    if (r.ok() && !board) r = make_error(Errc::kInvalidArgument, "this node owns no devices");
    if (r.ok()) {
      std::span<std::uint8_t> bytes(a->data);
      r = a->space == IoSpace::kPio
              ? board->io().pio(a->vcpu, static_cast<std::uint16_t>(a->address), a->is_write, bytes)
              : board->io().mmio(a->vcpu, Gpa{a->address}, a->is_write, bytes);
      served.fetch_add(1, std::memory_order_relaxed);
    }
    rdma::Frame reply = rdma::Frame::make(kIoRequest);
    if (!r.ok()) {
      reply.header.flags |= rdma::kFlagError;
      reply.header.arg0 = static_cast<std::uint64_t>(r.error().code);
      std::string msg = r.error().message.substr(0, rdma::kMaxPayload);
      reply.payload = rdma::Payload::copy_of(std::as_bytes(std::span(msg)));
    } else if (!a->is_write) {
      reply.payload = rdma::Payload::copy_of(std::as_bytes(std::span(a->data)));
    }
    (void)data.transport().reply(f.header, std::move(reply));
  }

  Result<int> run() {
    auto t0 = SteadyClock::instance().now();
    std::vector<std::thread> threads;
    std::mutex mu;
    std::optional<Error> first_error;
    for (auto& cpu : cpus) {
      threads.emplace_back([this, c = cpu.get(), &mu, &first_error] {
        if (config.on_vcpu_thread) config.on_vcpu_thread(c->index);
        auto r = c->runner->run();
        if (r.ok()) return;
        {
          std::lock_guard lock(mu);
          if (!first_error) {
            first_error = std::move(r).error();
            first_error->message = fmt::format("vcpu {}: {}", c->index, first_error->message);
          }
        }
        exit.request(kVcpuFailed);
      });
    }
    // A node may run no vCPU at all (more nodes than vCPUs is refused by the
    // CLI, but a placement can leave one empty): it serves until the exit.
    while (threads.empty() && !exit.requested())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for (auto& t : threads) t.join();
    run_ns.store(static_cast<std::uint64_t>(
        std::chrono::nanoseconds(SteadyClock::instance().now() - t0).count()));
    if (board) board->flush_console();
    if (first_error) return std::move(*first_error);
    return exit.exit_code().value_or(0);
  }

  void fail(const Error& e) {
    log::get("machine")->error("{}", e.to_string());
    exit.request(kVcpuFailed);
  }

  void notify(VcpuId id) {
    if (id.value() < by_vcpu.size() && by_vcpu[id.value()]) by_vcpu[id.value()]->runner->notify();
  }

  coord::Counters stats() const {
    vcpu::VcpuRunner::Stats s;
    for (const auto& c : cpus) {
      auto r = c->runner->stats();
      s.exits += r.exits;
      s.injected += r.injected;
      s.halts += r.halts;
    }
    coord::Counters out = {{"vcpus", cpus.size()},
                           {"vcpu_run_ms", run_ns.load() / 1'000'000},
                           {"vcpu_exits", s.exits},
                           {"interrupts_injected", s.injected},
                           {"halts", s.halts},
                           {"io_forwarded", forwarding ? forwarding->forwarded() : 0},
                           {"io_served_for_peers", served.load()},
                           {"ipis_sent_remote", router.sent_remote()},
                           {"ipis_received_remote", router.received()}};
    // Per vCPU as "vcpu<N>.<counter>" (the --json file groups them).
    for (const auto& c : cpus) {
      auto r = c->runner->stats();
      std::string p = "vcpu" + std::to_string(c->index) + ".";
      out.insert(out.end(), {{p + "run_ns", r.run_ns}, {p + "exits", r.exits},
                             {p + "interrupts_injected", r.injected}, {p + "halts", r.halts},
                             {p + "kicks", r.kicks}});
      for (std::size_t k = 0; k < r.exits_by_kind.size(); ++k)
        if (r.exits_by_kind[k] != 0)
          out.emplace_back(p + "exits_" +
                               std::string(vcpu::exit_kind_name(static_cast<vcpu::ExitKind>(k))),
                           r.exits_by_kind[k]);
    }
    return out;
  }

  NodeMachineConfig config;
  std::span<std::uint8_t> ram_bytes;
  std::optional<machine::GuestRam> guest_ram;
  vcpu::ExitRequest exit;
  std::atomic<bool> exit_from_peer{false};
  DataPath data;
  std::unique_ptr<machine::Board> board;
  std::unique_ptr<ForwardingIo> forwarding;
  vcpu::IoHandler* io = nullptr;
  machine::LocalIpiRouter local_router;
  ClusterIpiRouter router;
  std::vector<std::unique_ptr<Cpu>> cpus;
  std::vector<Cpu*> by_vcpu;
  std::atomic<std::uint64_t> served{0}, run_ns{0};
  vcpu::TimerThread timers;  // last: its thread calls notify() until it is destroyed
};

NodeMachine::NodeMachine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeMachine::~NodeMachine() = default;

Result<std::unique_ptr<NodeMachine>> NodeMachine::create(const NodeMachineConfig& config,
                                                         std::span<std::uint8_t> ram, vcpu::Vm& vm,
                                                         rdma::Reactor& reactor,
                                                         rdma::Transport& transport) {
  if (config.self.value() >= config.placement.nodes)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("node {} of a {}-node placement", config.self.value(),
                                  config.placement.nodes));
  auto impl = std::make_unique<Impl>(config, ram, reactor, transport);
  SSI_TRY(impl->init(vm));
  return std::unique_ptr<NodeMachine>(new NodeMachine(std::move(impl)));
}

Result<void> NodeMachine::load(std::span<const std::uint8_t> file, const machine::ElfImage* kernel) {
  return impl_->load(file, kernel);
}
void NodeMachine::deliver(rdma::Frame&& frame) { impl_->deliver(std::move(frame)); }
Result<int> NodeMachine::run() { return impl_->run(); }
void NodeMachine::request_exit(int code) { impl_->exit.request(code); }
machine::Board* NodeMachine::board() { return impl_->board.get(); }
coord::Counters NodeMachine::stats() const { return impl_->stats(); }

}  // namespace ssi::multinode
