// "vcpu-spin": busy threads standing in for vCPUs where there is no KVM.
// Each of this node's vCPUs (round-robin placement, as for a guest) is a
// thread that joins its cgroup exactly as a vCPU thread does
// (enter_vcpu_cgroup) and then spins for `rounds` milliseconds of wall
// time. It reports each thread's CPU time as the vCPU's run time, live
// (sample) and at the end: what the resource shares and the live metrics
// are tested with.
#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cgroup.hpp"
#include "cluster/workload.hpp"
#include "multinode/placement.hpp"

namespace ssi::cluster {
namespace {

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

class SpinWorkload final : public Workload {
 public:
  SpinWorkload(NodeHost& host, const coord::MachineConfig& config)
      : host_(host), config_(config),
        vcpus_(multinode::Placement::round_robin(config.vcpus, config.nodes).vcpus_on(host.self())),
        run_ns_(vcpus_.size()), spins_(vcpus_.size()) {}

  Result<void> start() {
    SSI_ASSIGN_OR_RETURN(cgroups_, cgroups_for(config_, host_.self().value(), vcpus_));
    return ok();
  }

  coord::PhaseResult run_phase(std::uint32_t) override {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(config_.workload_arg);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < vcpus_.size(); ++i)
      threads.emplace_back([this, i, until] {
        enter_vcpu_cgroup(cgroups_.get(), vcpus_[i]);
        std::uint64_t start = thread_cpu_ns();
        while (!stopping_.load(std::memory_order_relaxed) && std::chrono::steady_clock::now() < until) {
          for (int k = 0; k < 1000; ++k) asm volatile("" ::: "memory");  // work the compiler keeps
          spins_[i].fetch_add(1, std::memory_order_relaxed);
          run_ns_[i].store(thread_cpu_ns() - start, std::memory_order_relaxed);
        }
      });
    for (auto& t : threads) t.join();
    std::string line = "spun";
    for (std::size_t i = 0; i < vcpus_.size(); ++i)
      line += fmt::format(" vCPU {} {:.0f} ms CPU;", vcpus_[i], run_ns_[i].load() / 1e6);
    return {exit_status(stopping_ ? ExitCode::kNodeLost : ExitCode::kOk), line, sample()};
  }

  void stop() override { stopping_ = true; }

  coord::Counters sample() const override {
    coord::Counters c = {{"vcpus", vcpus_.size()}};
    for (std::size_t i = 0; i < vcpus_.size(); ++i) {
      std::string p = fmt::format("vcpu{}.", vcpus_[i]);
      c.emplace_back(p + "run_ns", run_ns_[i].load(std::memory_order_relaxed));
      c.emplace_back(p + "spins", spins_[i].load(std::memory_order_relaxed));
    }
    if (cgroups_)
      for (auto& kv : cgroups_->counters()) c.push_back(std::move(kv));
    return c;
  }

 private:
  NodeHost& host_;
  coord::MachineConfig config_;
  std::vector<std::uint32_t> vcpus_;
  std::vector<std::atomic<std::uint64_t>> run_ns_, spins_;
  std::unique_ptr<NodeCgroups> cgroups_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

Result<std::unique_ptr<Workload>> make_spin_workload(NodeHost& host, const coord::MachineConfig& config) {
  auto w = std::make_unique<SpinWorkload>(host, config);
  SSI_TRY(w->start());
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace ssi::cluster
