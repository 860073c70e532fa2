#include "machine_checkpoint.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "ssi/checkpoint_run.hpp"

namespace ssi::cluster {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Reads one byte of every page of `ram` on `threads` threads at once: each
// page not on this node is a DSM fault that waits for a peer, so several in
// flight overlap those waits (the writer then reads local copies).
void prefault(std::span<const std::uint8_t> ram, unsigned threads) {
  const std::uint64_t pages = ram.size() / machine::kCheckpointPage;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::uint64_t first = pages * t / threads, last = pages * (t + 1) / threads;
      std::uint8_t sum = 0;
      for (std::uint64_t p = first; p < last; ++p)
        sum ^= *static_cast<const volatile std::uint8_t*>(ram.data() + p * machine::kCheckpointPage);
      (void)sum;
    });
  for (auto& t : pool) t.join();
}

constexpr unsigned kPrefaultThreads = 8;

}  // namespace

NodeCheckpoint::~NodeCheckpoint() {
  if (writer_.joinable()) writer_.join();
}

Result<void> NodeCheckpoint::pause(std::chrono::milliseconds timeout) {
  if (!fabric_.machine().pause_vcpus(timeout)) {
    fabric_.machine().resume_vcpus();
    return make_error(Errc::kTimeout, fmt::format("a vCPU did not pause within {} ms", timeout.count()));
  }
  return ok();
}

Result<std::vector<coord::VcpuBytes>> NodeCheckpoint::save() {
  SSI_ASSIGN_OR_RETURN(auto states, fabric_.machine().save_vcpus());
  std::vector<coord::VcpuBytes> out;
  for (auto& [index, s] : states) out.push_back({index, vcpu::serialize(s)});
  return out;
}

Result<void> NodeCheckpoint::write(const std::string& dir, std::vector<coord::VcpuBytes> bytes,
                                   std::uint32_t nodes) {
  if (!fabric_.machine().board()) return make_error(Errc::kInvalidArgument, "only node 0 writes a checkpoint");
  std::vector<std::pair<std::uint32_t, vcpu::CpuState>> cpus;
  for (auto& b : bytes) {
    SSI_ASSIGN_OR_RETURN(vcpu::CpuState s, vcpu::deserialize(b.state));
    cpus.emplace_back(b.vcpu, std::move(s));
  }
  std::sort(cpus.begin(), cpus.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  if (cpus.size() != config_.vcpus)
    return make_error(Errc::kProtocol, fmt::format("{} vCPU states for {} vCPUs", cpus.size(), config_.vcpus));
  for (std::uint32_t i = 0; i < cpus.size(); ++i)
    if (cpus[i].first != i) return make_error(Errc::kProtocol, fmt::format("no state for vCPU {}", i));
  SSI_ASSIGN_OR_RETURN(auto devices, fabric_.machine().save_devices());
  machine::CheckpointConfig config = config_;
  config.nodes = nodes;
  config.tsc_khz = fabric_.machine().tsc_khz();
  std::lock_guard lock(mu_);
  if (writing_) return make_error(Errc::kInvalidArgument, "a checkpoint is being written");
  if (writer_.joinable()) writer_.join();
  writing_ = true;
  outcome_.reset();
  // Every vCPU of every node is parked: nothing writes guest RAM. Reading it
  // here pulls each page from its current owner through the DSM.
  writer_ = std::thread([this, dir, config, cpus = std::move(cpus), devices = std::move(devices)] {
    auto t0 = std::chrono::steady_clock::now();
    if (config.nodes > 1) prefault(fabric_.machine().ram(), kPrefaultThreads);
    double fetch_ms = ms_since(t0);
    auto r = [&]() -> Result<std::string> {
      SSI_ASSIGN_OR_RETURN(auto st, machine::write_checkpoint(dir, config, fabric_.machine().ram(), cpus, devices));
      return fmt::format("\"fetch_ms\": {:.3f}, \"write_ms\": {:.3f}, \"ram_pages\": {}, \"bytes\": {}, \"vcpus\": {}, \"nodes\": {}",
                         fetch_ms, ms_since(t0), st.ram_pages_written, st.bytes_written, cpus.size(), config.nodes);
    }();
    std::lock_guard lock(mu_);
    outcome_.emplace(std::move(r));
    writing_ = false;
  });
  return ok();
}

Result<coord::CheckpointProgress> NodeCheckpoint::written() {
  std::lock_guard lock(mu_);
  if (!outcome_) return coord::CheckpointProgress{false, {}};
  if (!outcome_->ok()) return outcome_->error();
  return coord::CheckpointProgress{true, **outcome_};
}

void NodeCheckpoint::resume(bool stop) {
  if (stop) fabric_.machine().request_exit(0);  // the vCPUs see it before they enter the guest
  fabric_.machine().resume_vcpus();
}

Result<void> restore_node(multinode::ClusterFabric& fabric, const machine::Checkpoint& c, NodeId self,
                          const std::vector<std::uint32_t>& vcpus) {
  auto& m = fabric.machine();
  if (self == multinode::kDeviceNode) {
    SSI_TRY(machine::load_checkpoint_ram(c, m.ram()));
    SSI_TRY(m.restore_devices(c.devices));
  }
  for (std::uint32_t v : vcpus) {
    if (v >= c.cpus.size()) return make_error(Errc::kInvalidArgument, fmt::format("no vCPU {} in the checkpoint", v));
    SSI_TRY(m.restore_vcpu(v, c.cpus[v]));
  }
  return ok();
}

}  // namespace ssi::cluster
