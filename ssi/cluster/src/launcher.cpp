#include "cluster/launcher.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/host_port.hpp"
#include "cluster/metrics.hpp"
#include "cluster/move_queue.hpp"
#include "cluster/placement_policy.hpp"
#include "cluster/retire_orders.hpp"
#include "cluster/workload.hpp"
#include "machine_demo.hpp"
#include "report.hpp"
#include "cluster/node_command.hpp"
#include "cluster/outcome_json.hpp"
#include "sha256.hpp"
#include "base/clock.hpp"
#include "ssi/checkpoint.hpp"

namespace ssi::cluster {
namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};

void on_signal(int sig) {
  int none = 0;
  g_signal.compare_exchange_strong(none, sig);  // the first signal names the exit code
  g_interrupted.store(true);
}

// fork + exec `ssi node ...`; the child dies with us (PDEATHSIG) and leaves
// Ctrl-C and SIGTERM (which a terminal or Slurm may send to the whole
// process group) to the coordinator, which stops every node cleanly.
pid_t spawn_node(std::uint16_t port, std::uint32_t id, const LocalClusterOptions& o) {
  std::vector<std::string> args = {"ssi",  "node", "--coordinator",
                                   fmt::format("127.0.0.1:{}", port),
                                   "--id", std::to_string(id), "--transport",
                                   o.config.transport};
  args.insert(args.end(), o.node_args.begin(), o.node_args.end());
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "ssi: error: exec of node %u failed\n", id);
  _exit(exit_status(ExitCode::kExecFailed));
}

// Nodes exit by themselves once stopped (within milliseconds); the bound
// only matters for a node stuck in the kernel, which is then killed and
// named, so a hang is visible rather than silently absorbed.
void reap(std::vector<pid_t>& pids) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (std::size_t id = 0; id < pids.size(); ++id) {
    if (pids[id] <= 0) continue;
    while (waitpid(pids[id], nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "ssi: node %zu did not exit within 5 s of the stop; killed\n", id);
        kill(pids[id], SIGKILL);
        waitpid(pids[id], nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

// Progress on stderr; quiet once interrupted (the report says it in one line).
void print_event(const std::string& line) {
  if (!g_interrupted.load()) std::fprintf(stderr, "[ssi] %s\n", line.c_str());
}

// --metrics: opens the endpoint (before any node starts: a bad address is
// exit 2 with nothing started). Null without --metrics.
Result<std::unique_ptr<MetricsServer>> open_metrics(const std::string& address) {
  if (address.empty()) return std::unique_ptr<MetricsServer>();
  auto server = MetricsServer::start(address);
  if (!server.ok()) return server;
  std::fprintf(stderr, "[ssi] metrics on %s (ssi stats %s)\n", (*server)->address().c_str(),
               (*server)->address().c_str());
  return server;
}

// A restored machine (docs/checkpoint.md): its config is the checkpoint's,
// and its TSC epoch makes vCPU 0's TSC go on from its saved value.
Result<void> prepare_restore(coord::MachineConfig& config) {
  SSI_ASSIGN_OR_RETURN(auto c, machine::open_checkpoint(config.restore_dir, false));
  config.vcpus = c.config.vcpus;
  config.mem_bytes = c.config.mem_bytes;
  config.kernel.clear();
  if (config.vcpus < config.nodes)
    return make_error(Errc::kInvalidArgument, fmt::format("the checkpoint has {} vCPUs, fewer than --nodes {}",
                                                          config.vcpus, config.nodes));
  config.vcpu_node.clear();  // the default placement
  if (c.config.tsc_khz != 0)
    config.tsc_epoch_ns = machine::tsc_epoch_for(machine::saved_tsc(c.cpus.at(0)), c.config.tsc_khz, realtime_ns());
  return ok();
}

// A guest machine: the kernel's hash goes into the config (every node
// checks its copy), the initrd's too (node 0, which loads it, checks its
// copy), and a placement must name a node for every vCPU.
Result<void> prepare_guest(coord::MachineConfig& config) {
  if (config.workload != "guest") return ok();
  if (!config.restore_dir.empty()) return prepare_restore(config);
  if (config.kernel.empty()) return make_error(Errc::kInvalidArgument, "--kernel is required");
  SSI_ASSIGN_OR_RETURN(config.kernel_sha256, sha256_of_file(config.kernel));
  if (!config.initrd.empty()) {
    SSI_ASSIGN_OR_RETURN(config.initrd_sha256, sha256_of_file(config.initrd));
  }
  if (config.vcpus < config.home_nodes())
    return make_error(Errc::kInvalidArgument, fmt::format("--vcpus {} is fewer than --nodes {} (each node runs a vCPU)",
                                                          config.vcpus, config.home_nodes()));
  if (config.vcpu_node.empty()) return ok();
  if (config.vcpu_node.size() != config.vcpus)
    return make_error(Errc::kInvalidArgument, fmt::format("--placement names {} nodes for {} vCPUs",
                                                          config.vcpu_node.size(), config.vcpus));
  for (std::uint32_t n : config.vcpu_node)
    if (n >= config.nodes)
      return make_error(Errc::kInvalidArgument, fmt::format("--placement: node {} of {}", n, config.nodes));
  return ok();
}

// The coordinator's live samples go to the endpoint.
// ...and it takes vCPU move orders (`ssi move`, `--placement auto`) to the
// coordinator; the placement policy sees every sample too.
void feed(coord::CoordinatorOptions& co, MetricsServer* server, MoveQueue& moves,
          std::unique_ptr<PlacementPolicy>& policy) {
  if (co.config.placement_auto)
    policy = std::make_unique<PlacementPolicy>(co.config.vcpus, co.config.nodes, moves);
  if (!server && !policy) return;
  co.on_sample = [server, p = policy.get()](const std::vector<coord::NodeReport>& nodes) {
    if (server) server->publish(nodes);
    if (p) p->observe(nodes);
  };
  co.next_move = [&moves] { return moves.next(); };
  if (server) server->serve_moves(&moves);
}

}  // namespace

const std::atomic<bool>& install_interrupt_flag() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return g_interrupted;
}

int run_local_cluster(const LocalClusterOptions& options) {
  MoveQueue moves;  // outlives the metrics endpoint that feeds it
  CheckpointOrders checkpoints(options.checkpoint);  // this one too
  RetireOrders retires;  // and this one
  std::unique_ptr<PlacementPolicy> policy;
  auto sock = coord::listen_socket("127.0.0.1", 0);
  if (!sock.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", sock.error().to_string().c_str());
    return exit_status(ExitCode::kError);
  }
  auto [fd, port] = *sock;
  coord::MachineConfig config = with_defaults(resolve_machine_demo(options.config));
  if (auto g = prepare_guest(config); !g.ok()) {
    ::close(fd);
    std::fprintf(stderr, "ssi: error: %s\n", g.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  auto metrics = open_metrics(options.metrics);
  if (!metrics.ok()) {
    ::close(fd);
    std::fprintf(stderr, "ssi: error: --metrics: %s\n", metrics.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  auto started = std::chrono::steady_clock::now();
  const auto& interrupted = install_interrupt_flag();  // before any child exists
  // A fresh secret per machine, handed to the node processes it forks in
  // their environment (docs/security.md).
  MachineSecret secret = MachineSecret::generate();
  setenv(kSecretEnv, secret.hex().c_str(), 1);
  std::vector<pid_t> pids;
  for (std::uint32_t id = 0; id < config.nodes; ++id) pids.push_back(spawn_node(port, id, options));

  coord::CoordinatorOptions co;
  co.listen_fd = fd;
  co.secret = secret;
  co.config = config;
  co.version = std::string(SSI_CLUSTER_VERSION);
  co.timing = options.timing;
  co.interrupted = &interrupted;
  co.watchdog = [&pids, &retires]() -> std::optional<std::string> {
    for (std::size_t id = 0; id < pids.size(); ++id) {
      int status = 0;
      if (pids[id] <= 0 || waitpid(pids[id], &status, WNOHANG) != pids[id]) continue;
      pids[id] = -1;  // reaped
      if (retires.retired(static_cast<std::uint32_t>(id)) && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        std::fprintf(stderr, "[ssi] node %zu retired: its process exited with code 0\n", id);
        continue;
      }
      if (WIFSIGNALED(status))
        return fmt::format("node {} process died: killed by signal {}", id, WTERMSIG(status));
      return fmt::format("node {} process exited early with code {}", id, WEXITSTATUS(status));
    }
    return std::nullopt;
  };
  co.on_event = options.verbose ? print_event : nullptr;
  feed(co, metrics->get(), moves, policy);
  checkpoints.feed(co);
  retires.feed(co);
  if (*metrics) (*metrics)->serve_checkpoints(&checkpoints);
  if (*metrics) (*metrics)->serve_retires(&retires);
  auto outcome = coord::run_coordinator(co);
  checkpoints.close();
  retires.close();
  reap(pids);
  return report_run({config, outcome, std::chrono::steady_clock::now() - started, g_signal.load(),
                     options.json_path});
}

int run_coordinator_command(const CoordinatorCommandOptions& options) {
  auto address = parse_host_port(options.listen, true);
  if (!address.ok()) {
    std::fprintf(stderr, "ssi: error: --listen: %s\n", address.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  const std::string& host = address->host;
  auto sock = coord::listen_socket(host, address->port);
  if (!sock.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", sock.error().to_string().c_str());
    return exit_status(ExitCode::kError);
  }
  coord::MachineConfig requested = options.config;
  requested.nodes += requested.standby;  // --nodes N --standby S: N + S node processes
  coord::MachineConfig config = with_defaults(resolve_machine_demo(requested));
  auto secret = machine_secret("coordinator");
  if (!secret.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", secret.error().to_string().c_str());
    return exit_status(ExitCode::kError);
  }
  if (auto g = prepare_guest(config); !g.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", g.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  MoveQueue moves;
  CheckpointOrders checkpoints({});  // `ssi checkpoint` through --metrics
  RetireOrders retires;              // `ssi retire` through --metrics
  std::unique_ptr<PlacementPolicy> policy;
  coord::CoordinatorOptions co;
  co.secret = *secret;
  co.listen_fd = sock->first;
  co.config = config;
  co.version = std::string(SSI_CLUSTER_VERSION);
  co.interrupted = &install_interrupt_flag();
  co.on_event = print_event;
  auto metrics = open_metrics(options.metrics);
  if (!metrics.ok()) {
    std::fprintf(stderr, "ssi: error: --metrics: %s\n", metrics.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  feed(co, metrics->get(), moves, policy);
  checkpoints.feed(co);
  retires.feed(co);
  if (*metrics) (*metrics)->serve_checkpoints(&checkpoints);
  if (*metrics) (*metrics)->serve_retires(&retires);
  std::fprintf(stderr, "[ssi] coordinator on %s:%u: waiting for %u nodes (ssi node --coordinator %s:%u --id K)%s\n",
               host.c_str(), sock->second, config.nodes, host.c_str(), sock->second,
               config.standby == 0 ? ""
                                   : fmt::format("; standby: ids {}..{}", config.home_nodes(), config.nodes - 1).c_str());
  auto started = std::chrono::steady_clock::now();
  auto outcome = coord::run_coordinator(co);
  checkpoints.close();
  retires.close();
  return report_run({config, outcome, std::chrono::steady_clock::now() - started, g_signal.load(),
                     options.json_path});
}

}  // namespace ssi::cluster
