#include "multinode/cluster_fabric.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

#include <fmt/format.h>

#include "base/log.hpp"
#include "dsm/home_map.hpp"
#include "multinode/data_path.hpp"
#include "multinode/device_loop.hpp"
#include "multinode/forwarding_io.hpp"
#include "multinode/ipi_router.hpp"
#include "multinode/transit.hpp"
#include "multinode/wire.hpp"

namespace ssi::multinode {

struct ClusterFabric::Impl {
  Impl(const ClusterNodeConfig& c, rdma::Reactor& reactor, rdma::Transport& transport)
      : config(c),
        table(c.placement),
        data(reactor, transport, exit, c.forward_timeout),
        router(c.self, table, data, local_ipis, [this](const Error& e) { fail(e); }) {
    if (c.self != kDeviceNode) forwarding = std::make_unique<ForwardingIo>(kDeviceNode, data);
    // The first exit request on this node stops every other node too,
    // unless it came from a peer (that peer told everyone already).
    exit.add_listener([this] {
      if (exit_from_peer.load()) return;
      int code = exit.exit_code().value_or(0);
      for (std::uint32_t n = 0; n < config.placement.nodes; ++n)
        if (n != config.self.value() && !table.left(NodeId{n}))
          data.post_send(NodeId{n}, rdma::Frame::make(kMachineExit, static_cast<std::uint64_t>(code)));
    });
  }

  Result<void> init(std::span<std::uint8_t> ram, vcpu::Vm& vm) {
    const auto& p = config.placement;
    // The guest's vNUMA view: the DSM's default homes, equal chunks per node.
    const std::uint32_t home_nodes = config.home_nodes ? config.home_nodes : p.nodes;
    SSI_ASSIGN_OR_RETURN(dsm::HomeMap homes,
                         dsm::HomeMap::equal_chunks(config.map.ram_bytes() / kPageSize, home_nodes));
    machine::MachineConfig mc{.vcpus = p.vcpus(),
                              .map = config.map,
                              .self = config.self,
                              .nodes = home_nodes,
                              .standby = p.nodes - home_nodes,
                              .vcpu_node = p.vcpu_node,
                              .node_ram_start = {},
                              .kernel = config.kernel,
                              .cpuid = config.cpuid,
                              .console_fd = config.console_fd,
                              .on_vcpu_thread = config.on_vcpu_thread,
                              .tsc_epoch_ns = config.tsc_epoch_ns};
    for (const auto& r : homes.ranges()) mc.node_ram_start.push_back(r.first.value() * kPageSize);
    SSI_ASSIGN_OR_RETURN(machine,
                         machine::Machine::create(vm, mc,
                                                  {.ram = ram,
                                                   .exit = &exit,
                                                   .local_ipis = &local_ipis,
                                                   .ipis = &router,
                                                   .remote_io = forwarding.get(),
                                                   .remote_eoi = remote_eoi()}));
    if (machine->board()) devices = std::make_unique<DeviceLoop>();
    return ok();
  }

  // Off node 0: a LAPIC's level-triggered EOI, sent to node 0's IOAPIC. The
  // vCPU waits until the frame is handed to the transport, so the EOI
  // reaches node 0 before any access this vCPU forwards after it.
  std::function<void(std::uint8_t)> remote_eoi() {
    if (config.self == kDeviceNode) return {};
    return [this](std::uint8_t vector) {
      auto r = data.send(kDeviceNode, encode_eoi(vector));
      if (r && !r->ok()) {
        Error e = r->error();
        e.message = fmt::format("EOI of vector {:#x} to node 0: {}", vector, e.message);
        fail(e);
      }
    };
  }

  void deliver(rdma::Frame&& f) {
    switch (f.header.type) {
      case kIoRequest:
        return serve_io(f);
      case kIpi: {
        auto ipi = decode_ipi(f);
        if (ipi.ok()) return router.receive(*ipi, NodeId{f.header.src});
        log::get("machine")->warn("bad IPI frame from node {}: {}", f.header.src,
                                  ipi.error().to_string());
        return;
      }
      case kEoi: {
        auto v = decode_eoi(f);
        if (v.ok() && devices) {
          // In order with the accesses queued on the device thread.
          devices->post([this, vector = *v] { machine->board()->ioapic().eoi(vector); });
          eois.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        log::get("machine")->warn("bad EOI frame from node {}", f.header.src);
        return;
      }
      case kMoveMarker: {
        auto m = decode_marker(f);
        if (m.ok()) return on_marker(*m);
        log::get("machine")->warn("bad move marker from node {}: {}", f.header.src,
                                  m.error().to_string());
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

  // Node 0, in a reactor fiber: one forwarded access, served on the device
  // thread while this fiber waits (the reactor serves other frames).
  void serve_io(const rdma::Frame& f) {
    auto a = decode_io(f);
    bool is_write = a.ok() && a->is_write;
    auto r = serve(std::move(a));
    rdma::Frame reply = rdma::Frame::make(kIoRequest);
    if (!r.ok()) {
      reply.header.flags |= rdma::kFlagError;
      reply.header.arg0 = static_cast<std::uint64_t>(r.error().code);
      std::string msg = r.error().message.substr(0, rdma::kMaxPayload);
      reply.payload = rdma::Payload::copy_of(std::as_bytes(std::span(msg)));
    } else if (!is_write) {
      reply.payload = rdma::Payload::copy_of(std::as_bytes(std::span(*r)));
    }
    (void)data.transport().reply(f.header, std::move(reply));
  }

  // The bytes read (empty for a write).
  Result<std::vector<std::uint8_t>> serve(Result<IoAccess> a) {
    if (!a.ok()) return a.error();
    if (!devices) return make_error(Errc::kInvalidArgument, "this node owns no devices");
    auto done = data.calls().call<std::vector<std::uint8_t>>(
        [this](LoopCalls::Task t) { devices->post(std::move(t)); },
        [this, a = std::move(*a)]() mutable -> Result<std::vector<std::uint8_t>> {
          SSI_TRY(access_board(a));
          return std::move(a.data);
        });
    if (!done) return make_error(Errc::kShutdown, "the machine is exiting");
    return std::move(*done);
  }

  // Device thread: one forwarded access on the board.
  Result<void> access_board(IoAccess& a) {
    machine::Board& board = *machine->board();
    std::span<std::uint8_t> bytes(a.data);
    served.fetch_add(1, std::memory_order_relaxed);
    if (a.space == IoSpace::kMmio) return board.io().mmio(a.vcpu, Gpa{a.address}, a.is_write, bytes);
    auto port = static_cast<std::uint16_t>(a.address);
    if (a.count() == 1) return board.io().pio(a.vcpu, port, a.is_write, bytes);
    return board.io().pio_string(a.vcpu, port, a.is_write, a.width, bytes);
  }

  void fail(const Error& e) {
    log::get("machine")->error("{}", e.to_string());
    exit.request(machine::kVcpuFailed);
  }

  coord::Counters stats() const {
    coord::Counters out = machine ? machine->stats() : coord::Counters{};
    out.insert(out.end(), {{"io_forwarded", forwarding ? forwarding->forwarded() : 0},
                           {"io_unclaimed_local", forwarding ? forwarding->unclaimed() : 0},
                           {"io_served_for_peers", served.load()},
                           {"eois_from_peers", eois.load()},
                           {"ipis_sent_remote", router.sent_remote()},
                           {"ipis_merged", data.outbox().merged()},
                           {"ipis_received_remote", router.received()},
                           {"ipis_followed", router.followed()},
                           {"ipis_held_in_move", ipis_held.load()},
                           {"vcpus_moved_in", moved_in.load()},
                           {"vcpus_moved_out", moved_out.load()},
                           {"vcpu_moves_undone", moves_undone.load()}});
    return out;
  }

  // vCPU mobility (docs/mobility.md, transit.hpp), on the control thread.
  Result<std::vector<std::uint8_t>> emigrate(std::uint32_t k) {
    if (k >= table.vcpus()) return make_error(Errc::kInvalidArgument, fmt::format("no vCPU {}", k));
    // Its last arrival here is over: nothing for it waits anywhere.
    if (auto a = arrival_of(k)) a->wait_complete(kPauseTimeout);
    auto d = std::make_shared<Departure>(k, config.self, router);
    SSI_ASSIGN_OR_RETURN(
        vcpu::CpuState st,
        machine->emigrate(
            k, [d](const vcpu::Ipi& ipi, std::uint32_t origin, vcpu::Lapic&) { d->on_ipi(ipi, NodeId{origin}); },
            kPauseTimeout));
    {
      std::lock_guard lock(transits_mu);
      departures[k] = d;
    }
    moved_out.fetch_add(1, std::memory_order_relaxed);
    return encode_move({vcpu::serialize(st), machine->vcpu_stats(k)});
  }

  Result<void> immigrate(std::uint32_t k, std::span<const std::uint8_t> bytes) {
    if (k >= table.vcpus()) return make_error(Errc::kInvalidArgument, fmt::format("no vCPU {}", k));
    SSI_ASSIGN_OR_RETURN(MovePayload move, decode_move(bytes));
    SSI_ASSIGN_OR_RETURN(vcpu::CpuState st, vcpu::deserialize(move.state));
    NodeId was = table.node_of(k);
    if (was == config.self) return come_back(k, st, std::move(move.counters));
    auto a = std::make_shared<Arrival>(k, was, config.placement.nodes);
    for (std::uint32_t n = 0; n < config.placement.nodes; ++n)
      if (table.left(NodeId{n})) {  // a retired node sends no markers (docs/mobility.md)
        a->on_marker(MoveMarker::Kind::kSwitched, NodeId{n});
        a->on_marker(MoveMarker::Kind::kFlushed, NodeId{n});
      }
    {
      std::lock_guard lock(transits_mu);
      arrivals[k] = a;
    }
    // Before it runs, under the router lock: IPIs that reach this node for
    // it are delivered here (by the gate), and `was` learns it left.
    auto r = machine->immigrate(
        k, st,
        [a](const vcpu::Ipi& ipi, std::uint32_t origin, vcpu::Lapic& l) { a->on_ipi(ipi, NodeId{origin}, l); },
        [&](vcpu::Lapic& lapic) {
          table.set(k, config.self);
          a->admitted(lapic, config.self);
          router.send_marker(was, {k, MoveMarker::Kind::kLeft, config.self});
        },
        std::move(move.counters));
    if (!r.ok()) {
      std::lock_guard lock(transits_mu);
      arrivals.erase(k);
      return r;
    }
    moved_in.fetch_add(1, std::memory_order_relaxed);
    return ok();
  }

  // The node k left takes it back (its move failed, so no other node
  // switched): it continues here with the IPIs held for it, in order.
  Result<void> come_back(std::uint32_t k, const vcpu::CpuState& st, machine::Counters counters) {
    std::shared_ptr<Departure> d;
    {
      std::lock_guard lock(transits_mu);
      if (auto it = departures.find(k); it != departures.end() && !it->second->is_placed()) d = it->second;
    }
    if (!d) return make_error(Errc::kInvalidArgument, fmt::format("vCPU {} already runs on node {}", k, config.self.value()));
    SSI_TRY(machine->immigrate(
        k, st, [](const vcpu::Ipi& ipi, std::uint32_t, vcpu::Lapic& l) { l.deliver(ipi); },
        [&](vcpu::Lapic& lapic) { ipis_held.fetch_add(d->cancel(lapic), std::memory_order_relaxed); },
        std::move(counters)));
    moves_undone.fetch_add(1, std::memory_order_relaxed);
    return ok();
  }

  // Every node: vCPU k now runs on `node`.
  void placed(std::uint32_t k, NodeId node) {
    if (k >= table.vcpus() || node == config.self) return;  // the node it went to knows
    std::shared_ptr<Departure> d;
    {
      std::lock_guard lock(transits_mu);
      if (auto it = departures.find(k); it != departures.end() && !it->second->is_placed()) d = it->second;
    }
    local_ipis.exclusive([&] {
      NodeId was = table.node_of(k);
      table.set(k, node);
      if (d) {  // the node it left: what it held goes ahead of anything later
        ipis_held.fetch_add(d->placed(node), std::memory_order_relaxed);
      } else if (was != node) {
        router.send_marker(was, {k, MoveMarker::Kind::kLeft, config.self});
        router.send_marker(node, {k, MoveMarker::Kind::kSwitched, config.self});
      }
    });
  }

  // Reactor thread: a marker from a peer, in order with its IPI frames.
  void on_marker(const MoveMarker& m) {
    if (m.vcpu >= table.vcpus()) return;
    if (m.kind == MoveMarker::Kind::kLeft) {
      std::shared_ptr<Departure> d;
      {
        std::lock_guard lock(transits_mu);
        if (auto it = departures.find(m.vcpu); it != departures.end()) d = it->second;
      }
      if (d) return local_ipis.shared([&] { d->on_left(m.origin); });
    } else if (auto a = arrival_of(m.vcpu)) {
      return a->on_marker(m.kind, m.origin);
    }
    log::get("machine")->warn("move marker {} for vCPU {} from node {}: no move of it here",
                              static_cast<int>(m.kind), m.vcpu, m.origin.value());
  }

  std::shared_ptr<Arrival> arrival_of(std::uint32_t k) {
    std::lock_guard lock(transits_mu);
    auto it = arrivals.find(k);
    return it == arrivals.end() ? nullptr : it->second;
  }

  static constexpr std::chrono::milliseconds kPauseTimeout{2000};

  ClusterNodeConfig config;
  PlacementTable table;  // what IPIs route by; vCPU moves change it
  std::mutex transits_mu;  // the last move of each vCPU that left / reached this node
  std::map<std::uint32_t, std::shared_ptr<Departure>> departures;
  std::map<std::uint32_t, std::shared_ptr<Arrival>> arrivals;
  std::atomic<std::uint64_t> moved_in{0}, moved_out{0}, ipis_held{0}, moves_undone{0};
  vcpu::ExitRequest exit;
  std::atomic<bool> exit_from_peer{false};
  DataPath data;
  machine::LocalIpiRouter local_ipis;
  ClusterIpiRouter router;
  std::unique_ptr<ForwardingIo> forwarding;  // off node 0
  std::atomic<std::uint64_t> served{0}, eois{0};
  std::unique_ptr<machine::Machine> machine;  // uses everything above
  // Node 0: serves the board for peers. After the machine: its tasks use
  // the board, so it is joined first.
  std::unique_ptr<DeviceLoop> devices;
};

ClusterFabric::ClusterFabric(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClusterFabric::~ClusterFabric() = default;

Result<std::unique_ptr<ClusterFabric>> ClusterFabric::create(const ClusterNodeConfig& config,
                                                             std::span<std::uint8_t> ram,
                                                             vcpu::Vm& vm, rdma::Reactor& reactor,
                                                             rdma::Transport& transport) {
  if (config.self.value() >= config.placement.nodes)
    return make_error(Errc::kInvalidArgument,
                      fmt::format("node {} of a {}-node placement", config.self.value(),
                                  config.placement.nodes));
  auto impl = std::make_unique<Impl>(config, reactor, transport);
  SSI_TRY(impl->init(ram, vm));
  return std::unique_ptr<ClusterFabric>(new ClusterFabric(std::move(impl)));
}

machine::Machine& ClusterFabric::machine() { return *impl_->machine; }
void ClusterFabric::deliver(rdma::Frame&& frame) { impl_->deliver(std::move(frame)); }

Result<void> ClusterFabric::start_receiving() {
  return impl_->data.transport().route(kMachineFrames,
                                       [this](rdma::Frame&& f) { deliver(std::move(f)); });
}

void ClusterFabric::stop_receiving() { impl_->data.transport().unroute(kMachineFrames); }
coord::Counters ClusterFabric::stats() const { return impl_->stats(); }

Result<std::vector<std::uint8_t>> ClusterFabric::emigrate(std::uint32_t vcpu) {
  return impl_->emigrate(vcpu);
}
Result<void> ClusterFabric::immigrate(std::uint32_t vcpu, std::span<const std::uint8_t> state) {
  return impl_->immigrate(vcpu, state);
}
void ClusterFabric::placed(std::uint32_t vcpu, NodeId node) { impl_->placed(vcpu, node); }
Placement ClusterFabric::placement() const { return impl_->table.snapshot(); }
void ClusterFabric::leave() { impl_->exit_from_peer.store(true); }
void ClusterFabric::settle(std::chrono::milliseconds timeout) {
  std::vector<std::shared_ptr<Arrival>> arrivals;
  {
    std::lock_guard lock(impl_->transits_mu);
    for (auto& [k, a] : impl_->arrivals) arrivals.push_back(a);
  }
  for (auto& a : arrivals) a->wait_complete(timeout);
}
void ClusterFabric::node_retired(NodeId node) { impl_->table.set_left(node); }
bool ClusterFabric::left(NodeId node) const { return impl_->table.left(node); }

}  // namespace ssi::multinode
