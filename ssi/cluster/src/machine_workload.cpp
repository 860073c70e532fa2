// "guest": this node's share of one multi-node machine (machine::Machine with a
// multinode::ClusterFabric) on the node's DSM region, with KVM vCPUs running a
// kernel of any kind
// (`ssi run --nodes N`, and `ssi demo --workload machine-demo --kernel K`
// where KVM is usable: machine_demo.cpp). Phase 0: node 0 loads the kernel
// and boot area into guest RAM (through the DSM); phase 1: every node runs
// its vCPUs until the exit.
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "base/log.hpp"
#include "cgroup.hpp"
#include "sha256.hpp"
#include "cluster/workload.hpp"
#include "dsm/node.hpp"
#include "dsm_host.hpp"
#include "machine_checkpoint.hpp"
#include "machine_retire.hpp"
#include "vcpu_faults.hpp"
#include "multinode/cluster_fabric.hpp"
#include "multinode/wire.hpp"
#include "ssi/kernel_image.hpp"

namespace ssi::cluster {
namespace {

// Exit code when the coordinator stops a machine that is still running, or
// the DSM fails a fault: a node was lost.
constexpr int kStopped = exit_status(ExitCode::kNodeLost);

class MachineWorkload final : public Workload {
 public:
  MachineWorkload(NodeHost& host, const coord::MachineConfig& config)
      : host_(host), config_(config) {}
  ~MachineWorkload() override {
    stop();
    checkpoint_.reset();  // joins a checkpoint writer (it reads the machine's RAM)
    retire_.reset();      // joins a pre-copy or handover
    (void)host_.call([this]() -> Result<void> {
      if (machine_) machine_->stop_receiving();
      host_.transport().on_peer_down({});
      machine_.reset();
      if (dsm_) dsm_->stop();
      dsm_.reset();
      return ok();
    }, std::chrono::seconds(5));
  }

  Result<void> start() {
    if (config_.vcpus < config_.home_nodes() || config_.standby >= config_.nodes)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("{} vCPUs for {} nodes ({} standby)", config_.vcpus, config_.nodes,
                                    config_.standby));
    SSI_ASSIGN_OR_RETURN(map_, machine::MemoryMap::pc(config_.mem_bytes));
    if (config_.vcpu_node.empty()) {
      // Standby nodes (the last config_.standby) start with no vCPU.
      placement_ = multinode::Placement::round_robin(config_.vcpus, config_.home_nodes());
      placement_.nodes = config_.nodes;
    } else {
      SSI_ASSIGN_OR_RETURN(placement_,
                           multinode::Placement::from_map(config_.nodes, config_.vcpu_node));
    }
    SSI_ASSIGN_OR_RETURN(cgroups_,
                         cgroups_for(config_, host_.self().value(), placement_.vcpus_on(host_.self())));
    if (!config_.restore_dir.empty()) {
      // The launcher checked the whole checkpoint; each node reads the
      // manifest and the vCPU states (its own checks) again.
      SSI_ASSIGN_OR_RETURN(auto c, machine::open_checkpoint(config_.restore_dir, false));
      if (c.config.vcpus != config_.vcpus || c.config.mem_bytes != config_.mem_bytes)
        return make_error(Errc::kInvalidArgument, fmt::format("checkpoint {} is not this machine's",
                                                              config_.restore_dir));
      kernel_kind_ = c.config.kernel;
      restore_.emplace(std::move(c));
    } else {
      SSI_TRY(check_file("kernel", config_.kernel, config_.kernel_sha256));
      if (host_.self() == NodeId{0}) SSI_TRY(check_file("initrd", config_.initrd, config_.initrd_sha256));
      SSI_ASSIGN_OR_RETURN(kernel_kind_, kernel_kind());
    }
    auto hv = vcpu::open_kvm();
    if (!hv.ok())
      return make_error(hv.error().code,
                        fmt::format("no usable KVM on this node: {}", hv.error().message));
    hv_ = std::move(*hv);
    SSI_ASSIGN_OR_RETURN(vcpu::CpuidEntries cpuid, hv_->supported_cpuid());
    cpuid = vcpu::filter_cpuid(std::move(cpuid), vcpu::CpuidPolicy{});
    SSI_ASSIGN_OR_RETURN(vm_, hv_->create_vm({}));
    faults_ = std::make_unique<VcpuFaults>(placement_.vcpus(), config_.nodes);
    return host_.call([this, cpuid]() -> Result<void> {
      dsm::NodeConfig nc;
      nc.self = host_.self();
      nc.nodes = config_.nodes;
      nc.bytes = map_->ram_bytes();
      if (config_.standby != 0) {  // standby nodes home nothing
        SSI_ASSIGN_OR_RETURN(auto homes, dsm::HomeMap::equal_chunks(map_->ram_bytes() / kPageSize, config_.nodes,
                                                                    config_.home_nodes()));
        nc.homes = homes.ranges();
      }
      // A fault the DSM cannot serve (a peer died): the machine stops with
      // the node-lost code and this fault as its error. The DSM then
      // releases the vCPU thread from the fault (it reads zeros), and the
      // vCPU, whose exit is already requested, leaves KVM_RUN.
      nc.on_request = [this](PageNo, NodeId home, std::uint32_t tid) { faults_->on_request(home, tid); };
      nc.on_fault_failed = [this](PageNo, const Error& why) {
        {
          std::lock_guard lock(mu_);
          if (!fault_failure_) fault_failure_ = why.message;
        }
        if (machine_) machine_->machine().request_exit(kStopped);
      };
      SSI_ASSIGN_OR_RETURN(dsm_, dsm::Node::create(nc, host_.reactor(), host_.transport()));
      std::span<std::uint8_t> ram(reinterpret_cast<std::uint8_t*>(dsm_->base()), dsm_->size());
      multinode::ClusterNodeConfig mc;
      mc.self = host_.self();
      mc.placement = placement_;
      mc.map = *map_;
      mc.kernel = kernel_kind_;
      mc.cpuid = cpuid;
      mc.on_vcpu_thread = [this, cg = cgroups_.get()](std::uint32_t v) {
        enter_vcpu_cgroup(cg, v);
        faults_->on_vcpu_thread(v);
      };
      mc.tsc_epoch_ns = config_.tsc_epoch_ns;
      mc.home_nodes = config_.home_nodes();
      SSI_ASSIGN_OR_RETURN(machine_, multinode::ClusterFabric::create(mc, ram, *vm_, host_.reactor(),
                                                                      host_.transport()));
      checkpoint_ = std::make_unique<NodeCheckpoint>(
          *machine_, machine::CheckpointConfig{.vcpus = config_.vcpus, .mem_bytes = config_.mem_bytes,
                                               .kernel = kernel_kind_, .nodes = config_.nodes});
      retire_ = std::make_unique<NodeRetire>(host_, *dsm_, *machine_);
      if (auto* board = machine_->machine().board(); board && !config_.checkpoint_on.empty())
        board->set_console_observer([cp = checkpoint_.get(), text = config_.checkpoint_on](std::string_view line) {
          if (line.find(text) != std::string_view::npos) cp->console_matched();
        });
      SSI_TRY(machine_->start_receiving());  // the DSM routes its frames in start()
      // The machine stops as soon as a peer is gone (no vCPU can trust the
      // memory any more); the DSM fails the faults that cannot be served.
      host_.transport().on_peer_down([this](NodeId peer, const Error& why) {
        // A node that retired left on purpose (docs/mobility.md).
        if (retire_->left(peer) || retire_->retired()) return;
        machine_->machine().request_exit(kStopped);
        dsm_->peer_failed(peer, why);
      });
      return dsm_->start();
    });
  }

  coord::PhaseResult run_phase(std::uint32_t phase) override {
    coord::PhaseResult r = phase == 0 ? load() : run();
    r.stats = machine_->stats();
    faults_->append_to(r.stats);
    auto dsm_stats = DsmSnapshot::of(dsm_->stats()).counters();
    r.stats.insert(r.stats.end(), dsm_stats.begin(), dsm_stats.end());
    if (cgroups_)
      for (auto& kv : cgroups_->counters()) r.stats.push_back(std::move(kv));
    return r;
  }

  Result<std::vector<std::uint8_t>> emigrate(std::uint32_t vcpu) override {
    if (!machine_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return machine_->emigrate(vcpu);
  }
  Result<void> immigrate(std::uint32_t vcpu, std::span<const std::uint8_t> state) override {
    if (!machine_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return machine_->immigrate(vcpu, state);
  }
  void placed(std::uint32_t vcpu, NodeId node) override {
    if (machine_) machine_->placed(vcpu, node);
  }

  Result<void> checkpoint_pause(std::chrono::milliseconds timeout) override {
    if (!checkpoint_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return checkpoint_->pause(timeout);
  }
  Result<std::vector<coord::VcpuBytes>> checkpoint_save() override {
    if (!checkpoint_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return checkpoint_->save();
  }
  Result<void> checkpoint_write(const std::string& dir, std::vector<coord::VcpuBytes> states,
                                std::uint32_t nodes) override {
    if (!checkpoint_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return checkpoint_->write(dir, std::move(states), nodes);
  }
  Result<coord::CheckpointProgress> checkpoint_written() override {
    if (!checkpoint_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return checkpoint_->written();
  }
  void checkpoint_resume(bool stop) override {
    if (checkpoint_) checkpoint_->resume(stop);
  }

  Result<void> retire_precopy(NodeId from, bool pages) override {
    if (!retire_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return retire_->precopy(from, pages);
  }
  Result<void> retire_hand_over(NodeId to) override {
    if (!retire_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return retire_->hand_over(to);
  }
  Result<coord::CheckpointProgress> retire_status() override {
    if (!retire_) return make_error(Errc::kInvalidArgument, "no machine yet");
    return retire_->status();
  }
  void node_retired(NodeId node, NodeId) override {
    if (retire_) retire_->node_retired(node);
  }

  coord::Counters sample() const override {
    if (!machine_ || !dsm_) return {};
    coord::Counters c = machine_->stats();
    if (checkpoint_ && checkpoint_->matched()) c.emplace_back("checkpoint_console_matched", 1);
    faults_->append_to(c);
    for (auto& kv : live_dsm_counters(dsm_->stats())) c.push_back(std::move(kv));
    if (cgroups_)
      for (auto& kv : cgroups_->counters()) c.push_back(std::move(kv));
    return c;
  }

  // Returns once every vCPU thread of this node has left the machine: a
  // vCPU blocked on a dead peer's page is released by the DSM (peer_failed,
  // from the transport's peer-down report), not by a timeout here.
  void stop() override {
    if (!machine_) return;
    machine_->machine().request_exit(kStopped);
    {
      std::lock_guard lock(mu_);
      if (!running_) return;
    }
    // Stopped while running: a vCPU may wait on a peer the transport still
    // thinks alive (one the coordinator found hung): no fault is served now.
    (void)host_.call([this]() -> Result<void> {
      dsm_->fail(make_error(Errc::kShutdown, "the machine was stopped while this fault waited"));
      return ok();
    }, std::chrono::seconds(5));
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !running_; });
  }

 private:
  // Every node runs the kernel its coordinator was given, node 0 loads the
  // initrd: each checks that its own copy (same path; a shared filesystem,
  // or copied) is the coordinator's file.
  static Result<void> check_file(const char* what, const std::string& path, const std::string& sha256) {
    if (sha256.empty()) return ok();
    auto mine = sha256_of_file(path);
    if (!mine.ok()) return make_error(Errc::kNotFound, fmt::format("{}: {}", what, mine.error().message));
    if (*mine != sha256)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("{} {} is not the coordinator's file (SHA-256 {}..., "
                                    "coordinator's {}...)",
                                    what, path, mine->substr(0, 12), sha256.substr(0, 12)));
    return ok();
  }

  // Every node: how its APs start depends on the kernel's kind, which the
  // file's first 8 KiB decide (bzImage header, multiboot header, ELF magic).
  Result<machine::KernelKind> kernel_kind() const {
    std::ifstream in(config_.kernel, std::ios::binary);
    if (!in) return make_error(Errc::kNotFound, fmt::format("{}: cannot open", config_.kernel));
    std::vector<std::uint8_t> head(8 * 1024);
    in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(in.gcount()));
    auto kind = machine::detect_kernel(head);
    if (!kind.ok()) return make_error(kind.error().code, fmt::format("{}: {}", config_.kernel, kind.error().message));
    return *kind;
  }

  // Node 0 reads and checks the kernel once and loads it into guest RAM
  // (through the DSM).
  coord::PhaseResult load() {
    if (restore_) {  // a restored machine: its RAM, devices and vCPUs instead of a kernel
      auto r = restore_node(*machine_, *restore_, host_.self(), placement_.vcpus_on(host_.self()));
      restore_.reset();
      if (!r.ok()) return {2, r.error().to_string(), {}};
      return {0, "", {}};
    }
    if (host_.self() != multinode::kDeviceNode) return {0, "", {}};
    auto image = machine::read_kernel_image({.kernel = config_.kernel, .initrd = config_.initrd,
                                             .append = config_.append, .vcpus = config_.vcpus,
                                             .nodes = config_.home_nodes()},
                                            *map_);
    if (!image.ok()) return {2, image.error().to_string(), {}};
    auto r = machine_->machine().load(&*image);
    if (!r.ok()) return {2, r.error().to_string(), {}};
    return {0, "", {}};
  }

  coord::PhaseResult run() {
    {
      std::lock_guard lock(mu_);
      running_ = true;
    }
    auto r = machine_->machine().run();
    {
      std::lock_guard lock(mu_);
      running_ = false;
    }
    cv_.notify_all();
    if (!r.ok()) return {exit_status(ExitCode::kFailed), r.error().to_string(), {}};
    {
      std::lock_guard lock(mu_);
      if (fault_failure_) return {kStopped, fmt::format("vCPU stopped: {}", *fault_failure_), {}};
    }
    std::string placed;
    for (std::uint32_t v : placement_.vcpus_on(host_.self())) placed += fmt::format(" {}", v);
    return {*r, fmt::format("vCPUs{} stopped, exit code {}", placed, *r), {}, /*guest_exit=*/*r != 0};
  }

  NodeHost& host_;
  coord::MachineConfig config_;
  std::optional<machine::MemoryMap> map_;
  multinode::Placement placement_;
  std::unique_ptr<vcpu::Hypervisor> hv_;
  std::unique_ptr<vcpu::Vm> vm_;
  std::unique_ptr<NodeCgroups> cgroups_;  // outlives the vCPU threads in its cgroups
  std::unique_ptr<VcpuFaults> faults_;    // outlives the DSM and the vCPU threads that count
  std::unique_ptr<dsm::Node> dsm_;
  machine::KernelKind kernel_kind_ = machine::KernelKind::kSsiElf;
  std::unique_ptr<multinode::ClusterFabric> machine_;  // uses vm_ and dsm_'s memory
  std::optional<machine::Checkpoint> restore_;         // until phase 0 restored it
  std::unique_ptr<NodeCheckpoint> checkpoint_;         // uses machine_; destroyed first
  std::unique_ptr<NodeRetire> retire_;                 // uses machine_ and dsm_
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;
  std::optional<std::string> fault_failure_;  // the first fault the DSM failed (under mu_)
};

}  // namespace

Result<std::unique_ptr<Workload>> make_machine_workload(NodeHost& host,
                                                        const coord::MachineConfig& config) {
  auto w = std::make_unique<MachineWorkload>(host, config);
  SSI_TRY(w->start());
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace ssi::cluster
