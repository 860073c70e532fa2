#include "cluster/node_command.hpp"

#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "base/log.hpp"
#include "cluster/host_port.hpp"
#include "cluster/node_host.hpp"
#include "cluster/workload.hpp"
#include "coordinator/node_client.hpp"

namespace ssi::cluster {
namespace {

// The coordinator's stop reason when the user interrupted the run
// (coordinator.cpp): its launcher reports that in one line, so the nodes
// stay quiet about it.
bool is_interruption(const std::string& reason) { return reason.starts_with("interrupted"); }

// A DSM fault takes well under 1 ms here; a stopped worker notices the
// stop after its current operation.
constexpr auto kServeAfterStop = std::chrono::milliseconds(200);

// Glue between the coordinator's orders and this node's host + workload.
class ClusterRuntime final : public coord::NodeRuntime {
 public:
  explicit ClusterRuntime(NodeHost& host) : host_(host) {}
  ~ClusterRuntime() override {
    join_worker();
    // Stopped mid-phase: peers' workers may still be in a fault on a page
    // homed here; keep serving them while they notice the stop, or they
    // would wait for a DSM that is gone. (A phase that finished leaves no
    // fault in flight.)
    if (stopped_mid_phase_) std::this_thread::sleep_for(kServeAfterStop);
    workload_.reset();
  }

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
    // Peers now close their connections in any order: expected, not a warning.
    if (!failed || is_interruption(reason)) log::get("rdma")->set_level(spdlog::level::err);
    stopped_mid_phase_ = !worker_done_;
    if (workload_) workload_->stop();
    if (workload_ && failed && !is_interruption(reason)) workload_->fail(reason);
  }

  coord::Counters sample() override { return workload_ ? workload_->sample() : coord::Counters{}; }
  Result<std::vector<std::uint8_t>> emigrate(VcpuId v) override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->emigrate(v.value());
  }
  Result<void> immigrate(VcpuId v, std::span<const std::uint8_t> state) override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->immigrate(v.value(), state);
  }
  void placed(VcpuId v, NodeId node) override {
    if (workload_) workload_->placed(v.value(), node);
  }
  Result<void> checkpoint_pause(std::chrono::milliseconds timeout) override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->checkpoint_pause(timeout);
  }
  Result<std::vector<coord::VcpuBytes>> checkpoint_save() override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->checkpoint_save();
  }
  Result<void> checkpoint_write(const std::string& dir, std::vector<coord::VcpuBytes> states,
                                std::uint32_t nodes) override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->checkpoint_write(dir, std::move(states), nodes);
  }
  Result<coord::CheckpointProgress> checkpoint_written() override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->checkpoint_written();
  }
  void checkpoint_resume(bool stop) override {
    if (workload_) workload_->checkpoint_resume(stop);
  }
  Result<void> retire_precopy(NodeId from, bool pages) override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->retire_precopy(from, pages);
  }
  Result<void> retire_hand_over(NodeId to) override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->retire_hand_over(to);
  }
  Result<coord::CheckpointProgress> retire_status() override {
    if (!workload_) return make_error(Errc::kInvalidArgument, "not configured");
    return workload_->retire_status();
  }
  void node_retired(NodeId node, NodeId to) override {
    if (workload_) workload_->node_retired(node, to);
  }

 private:
  // A worker blocked on a DSM page of a lost node is released by the DSM
  // (the transport's peer-down report, or Workload::fail after a failure),
  // so joining it is bounded by failure detection; a healthy worker ends
  // within milliseconds of workload->stop().
  void join_worker() {
    if (worker_.joinable()) worker_.join();
  }
  NodeHost& host_;
  std::unique_ptr<Workload> workload_;
  std::thread worker_;
  std::atomic<bool> worker_done_{true};
  bool stopped_mid_phase_ = false;
};

// scancel signals every task of the job, nodes included. A node gives the
// coordinator (signalled too) a moment to stop the machine cleanly, which
// reports the interruption once; a node left alone ends itself. Nodes of
// `ssi demo` / `ssi run` inherit SIGINT/SIGTERM ignored and keep it so.
std::atomic<int> g_signal{0};
constexpr auto kStopGraceAfterSignal = std::chrono::seconds(1);

void on_signal(int sig) { g_signal.store(sig); }

class SignalGrace {
 public:
  explicit SignalGrace(unsigned id) {
    for (int sig : {SIGINT, SIGTERM}) {
      struct sigaction old {};
      sigaction(sig, nullptr, &old);
      if (old.sa_handler == SIG_IGN) continue;
      struct sigaction sa {};
      sa.sa_handler = on_signal;
      sigemptyset(&sa.sa_mask);
      sigaction(sig, &sa, nullptr);
    }
    watcher_ = std::thread([this, id] {
      std::unique_lock lock(mu_);
      while (!done_ && g_signal.load() == 0) cv_.wait_for(lock, std::chrono::milliseconds(10));
      if (done_ || cv_.wait_for(lock, kStopGraceAfterSignal, [this] { return done_; })) return;
      int sig = g_signal.load();
      std::fprintf(stderr, "ssi node %u: SIG%s and no stop from the coordinator within %lld s; exiting\n",
                   id, sigabbrev_np(sig), static_cast<long long>(kStopGraceAfterSignal.count()));
      std::fflush(nullptr);
      std::_Exit(signal_exit_status(sig));
    });
  }
  ~SignalGrace() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    watcher_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread watcher_;
};

// Connects (and hangs up) until the coordinator accepts a TCP connection:
// 50 ms, 100 ms, ... up to 1 s between attempts, until `timeout`.
Result<void> wait_for_coordinator(const std::string& address, std::chrono::milliseconds timeout) {
  SSI_ASSIGN_OR_RETURN(HostPort hp, parse_host_port(address, false));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    addrinfo* found = nullptr;
    int gai = getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &found);
    int err = EHOSTUNREACH;
    for (addrinfo* a = gai == 0 ? found : nullptr; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
      err = rc == 0 ? 0 : errno;
      ::close(fd);
      if (rc == 0) break;
    }
    if (found) freeaddrinfo(found);
    if (err == 0) return ok();
    if (int sig = g_signal.load())  // nobody to stop us yet: end now
      return make_error(Errc::kShutdown, fmt::format("interrupted by SIG{} while waiting for the coordinator",
                                                     sigabbrev_np(sig)));
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      std::string why = gai != 0 ? gai_strerror(gai) : std::strerror(err);
      return make_error(Errc::kTimeout, fmt::format("coordinator {} not reachable within {} s: {}",
                                                    address, timeout.count() / 1000, why));
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

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
    return exit_status(ExitCode::kError);
  }
  auto host = NodeHost::create(self, options.transport, options.listen, *secret);
  if (!host.ok()) {
    std::fprintf(stderr, "ssi: error: node %u: %s\n", options.id, host.error().to_string().c_str());
    return exit_status(ExitCode::kError);
  }
  SignalGrace grace(options.id);
  if (auto up = wait_for_coordinator(options.coordinator, options.join_timeout); !up.ok()) {
    std::fprintf(stderr, "ssi: error: node %u: %s\n", options.id, up.error().message.c_str());
    return g_signal.load() ? signal_exit_status(g_signal.load()) : exit_status(ExitCode::kNodeLost);
  }
  coord::NodeOptions no;
  no.coordinator = options.coordinator;
  no.secret = *secret;
  no.info = coord::NodeInfo{self, hostname(), SSI_CLUSTER_VERSION,
                            (*host)->transport().local_address(),
                            static_cast<std::uint32_t>(getpid()), {options.transport}};
  coord::NodeExit e;
  {
    // The runtime (worker thread, workload, its DSM) is torn down while the
    // reactor still runs: the workload frees its DSM node with a call on the
    // reactor. Shutting the host down first left that call waiting for a
    // reactor that was gone, and every node with a DSM 5 s at exit.
    ClusterRuntime runtime(**host);
    e = coord::run_node(no, runtime);
  }
  (*host)->shutdown();
  if (e.exit_code != 0 && !is_interruption(e.message))
    std::fprintf(stderr, "ssi: error: node %u: %s\n", options.id, e.message.c_str());
  return e.exit_code;
}

}  // namespace ssi::cluster
