#include "cluster/node_command.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/log.hpp"
#include "cluster/node_host.hpp"
#include "cluster/workload.hpp"
#include "coordinator/node_client.hpp"

namespace ssi::cluster {
namespace {

// Glue between the coordinator's orders and this node's host + workload.
class ClusterRuntime final : public coord::NodeRuntime {
 public:
  explicit ClusterRuntime(NodeHost& host) : host_(host) {}
  ~ClusterRuntime() override { join_worker(); }

  Result<void> configure(const coord::MachineConfig& config) override {
    std::vector<std::string> addresses;
    for (const auto& p : config.peers) addresses.push_back(p.transport_address);
    SSI_TRY(host_.connect_all(addresses));
    SSI_ASSIGN_OR_RETURN(workload_, make_workload(host_, config));
    return ok();
  }

  void run_phase(std::uint32_t phase, Done done) override {
    join_worker();
    worker_done_ = false;
    worker_ = std::thread([this, phase, done = std::move(done)] {
      coord::PhaseResult r = workload_ ? workload_->run_phase(phase)
                                       : coord::PhaseResult{2, "not configured", {}};
      done(std::move(r));
      worker_done_ = true;
    });
  }

  void stop(const std::string& reason, bool failed) override {
    // The reason is printed once, as this process's error line (run_node_command).
    (void)reason;
    failed_ = failed_ || failed;
    // Peers now close their connections in any order: expected, not a warning.
    if (!failed) log::get("rdma")->set_level(spdlog::level::err);
    if (workload_) workload_->stop();
  }

 private:
  // A worker blocked on a DSM page whose home died can never be woken (the
  // DSM leaves that request hanging): after a bounded wait the process
  // exits with the "node lost" code instead of hanging, and before the
  // workload's memory is unmapped under the worker. After a failure the
  // wait is short, so every process is gone within 2 s of a node's death;
  // a healthy worker ends within milliseconds of workload->stop().
  void join_worker() {
    if (!worker_.joinable()) return;
    auto deadline = std::chrono::steady_clock::now() + (failed_ ? std::chrono::milliseconds(800) : std::chrono::seconds(5));
    while (!worker_done_ && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!worker_done_) {
      std::fprintf(stderr, "ssi node %u: the workload is stuck (waiting for memory of a lost node); exiting\n",
                   host_.self().value());
      std::fflush(stderr);
      _exit(3);
    }
    worker_.join();
  }
  NodeHost& host_;
  std::unique_ptr<Workload> workload_;
  std::thread worker_;
  std::atomic<bool> worker_done_{true};
  bool failed_ = false;  // stopped because of a failure (control thread only)
};

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

}  // namespace

Result<MachineSecret> machine_secret(const std::string& who) {
  auto s = MachineSecret::from_environment();
  if (s.ok() || s.error().code != Errc::kNotFound) return s;
  // Hosts started by hand without a secret still work, unauthenticated:
  // docs/security.md says when that is acceptable.
  std::fprintf(stderr, "ssi: warning: %s: no machine secret (%s or %s): connections are not authenticated\n",
               who.c_str(), kSecretEnv, kSecretFileEnv);
  return MachineSecret{};
}

int run_node_command(const NodeCommandOptions& options) {
  NodeId self{options.id};
  log::set_node(self);
  auto secret = machine_secret(fmt::format("node {}", options.id));
  if (!secret.ok()) {
    std::fprintf(stderr, "ssi: error: node %u: %s\n", options.id, secret.error().to_string().c_str());
    return 2;
  }
  auto host = NodeHost::create(self, options.transport, options.listen, *secret);
  if (!host.ok()) {
    std::fprintf(stderr, "ssi: error: node %u: %s\n", options.id, host.error().to_string().c_str());
    return 2;
  }
  coord::NodeOptions no;
  no.coordinator = options.coordinator;
  no.secret = *secret;
  no.info = coord::NodeInfo{self, hostname(), SSI_CLUSTER_VERSION,
                            (*host)->transport().local_address(),
                            static_cast<std::uint32_t>(getpid()), {options.transport}};
  int code = 0;
  {
    ClusterRuntime runtime(**host);
    coord::NodeExit e = coord::run_node(no, runtime);
    if (e.exit_code != 0)
      std::fprintf(stderr, "ssi: error: node %u: %s\n", options.id, e.message.c_str());
    code = e.exit_code;
    (*host)->shutdown();
  }
  return code;
}

}  // namespace ssi::cluster
