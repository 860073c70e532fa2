// N nodes of one machine in one test process: each with its reactor thread,
// a transport (loopback by default), its DSM node and a ClusterFabric whose
// vCPUs are FakeVcpus scripted by the caller. Node 0's console goes to a
// memfd the test reads back, or to the caller's `console_fd`.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <future>
#include <string>

#include "dsm/local_cluster.hpp"
#include "multinode/cluster_fabric.hpp"
#include "multinode/wire.hpp"
#include "vcpu/fake_vm.hpp"

namespace ssi::multinode::testing {

using ScriptFn = std::function<void(vcpu::testing::FakeVcpu&, std::span<std::uint8_t> ram)>;

class InProcessMachine {
 public:
  InProcessMachine(std::uint32_t nodes, std::uint32_t vcpus, std::uint64_t mem, ScriptFn script,
                   std::uint64_t seed = 1, std::string transport = "loopback",
                   machine::KernelKind kernel = machine::KernelKind::kSsiElf,
                   int console_fd = -1)
      : placement_(Placement::round_robin(vcpus, nodes)), own_console_(console_fd < 0) {
    auto map = machine::MemoryMap::pc(mem);
    status_ = map.ok() ? Result<void>(ok()) : Result<void>(map.error());
    if (!status_.ok()) return;
    dsm::testing::LocalClusterOptions o;
    o.nodes = nodes;
    o.bytes = map->ram_bytes();
    o.seed = seed;
    o.transport = std::move(transport);
    auto c = dsm::testing::LocalCluster::create(o);
    if (!c.ok()) {
      status_ = c.error();
      return;
    }
    cluster_ = std::move(*c);
    console_ = own_console_ ? ::memfd_create("console", MFD_CLOEXEC) : console_fd;
    for (std::uint32_t i = 0; i < nodes; ++i) {
      auto ram = std::span(reinterpret_cast<std::uint8_t*>(cluster_->node(i).base()),
                           cluster_->node(i).size());
      vms_.push_back(std::make_unique<vcpu::testing::FakeVm>(
          [script, ram](vcpu::testing::FakeVcpu& v) { script(v, ram); }));
      ClusterNodeConfig nc;
      nc.self = NodeId{i};
      nc.placement = placement_;
      nc.map = *map;
      nc.console_fd = console_;
      nc.kernel = kernel;
      nc.forward_timeout = std::chrono::milliseconds(3000);
      auto m = ClusterFabric::create(nc, ram, *vms_[i], cluster_->reactor(i), cluster_->transport(i));
      if (!m.ok()) {
        status_ = m.error();
        return;
      }
      machines_.push_back(std::move(*m));
      ClusterFabric* mp = machines_.back().get();
      (void)cluster_->run_on(i, [this, mp] { status_ = mp->start_receiving(); });
      if (!status_.ok()) return;
    }
    status_ = machines_[0]->machine().load(nullptr);
  }

  ~InProcessMachine() {
    for (auto& m : machines_)
      if (m) m->machine().request_exit(99);
    for (auto* v : {&runs_, &leftover_})
      for (auto& f : *v)
        if (f.valid()) f.wait();
    // Frames must stop reaching the machines before they go.
    for (std::size_t i = 0; cluster_ && i < machines_.size(); ++i)
      (void)cluster_->run_on(i, [this, i] { machines_[i]->stop_receiving(); });
    machines_.clear();
    if (own_console_ && console_ >= 0) ::close(console_);
  }

  const Result<void>& status() const { return status_; }
  ClusterFabric& machine(std::size_t i) { return *machines_[i]; }
  vcpu::testing::FakeVm& vm(std::size_t i) { return *vms_[i]; }
  dsm::testing::LocalCluster& cluster() { return *cluster_; }
  const Placement& placement() const { return placement_; }

  void start() {
    for (auto& m : machines_)
      runs_.push_back(std::async(std::launch::async, [mp = m.get()] { return mp->machine().run(); }));
  }
  // Bounded: a node that does not finish in time gets a kTimeout error.
  std::vector<Result<int>> wait(std::chrono::milliseconds limit) {
    std::vector<Result<int>> out;
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (auto& f : runs_) {
      if (f.wait_until(deadline) != std::future_status::ready) {
        out.push_back(make_error(Errc::kTimeout, "node did not stop in time"));
        leftover_.push_back(std::move(f));  // the destructor stops and joins it
        continue;
      }
      out.push_back(f.get());
    }
    runs_.clear();
    return out;
  }
  std::string console() const {
    std::string s;
    char buf[4096];
    ssize_t n;
    off_t off = 0;
    while ((n = ::pread(console_, buf, sizeof buf, off)) > 0) {
      s.append(buf, static_cast<std::size_t>(n));
      off += n;
    }
    return s;
  }

 private:
  Placement placement_;
  Result<void> status_;
  std::unique_ptr<dsm::testing::LocalCluster> cluster_;
  std::vector<std::unique_ptr<vcpu::testing::FakeVm>> vms_;
  std::vector<std::unique_ptr<ClusterFabric>> machines_;
  std::vector<std::future<Result<int>>> runs_, leftover_;
  bool own_console_ = true;
  int console_ = -1;
};

}  // namespace ssi::multinode::testing
