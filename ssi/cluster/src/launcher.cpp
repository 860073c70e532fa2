#include "cluster/launcher.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "cluster/node_command.hpp"
#include "cluster/outcome_json.hpp"

namespace ssi::cluster {
namespace {

std::atomic<bool> g_interrupted{false};

void on_signal(int) { g_interrupted.store(true); }

// fork + exec `ssi node ...`; the child dies with us (PDEATHSIG) and leaves
// Ctrl-C to the coordinator, which stops every node cleanly.
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
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "ssi: error: exec of node %u failed\n", id);
  _exit(127);
}

// Bounded reap: every node gets 5 s to exit after the coordinator is done.
void reap(std::vector<pid_t>& pids) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (pid_t pid : pids) {
    if (pid <= 0) continue;
    while (waitpid(pid, nullptr, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void print_event(const std::string& line) { std::fprintf(stderr, "[ssi] %s\n", line.c_str()); }

// Node results and the per-node stats table on stdout; the failure on stderr;
// and the JSON file if asked for (written even for a failed run).
int report(const Result<coord::Outcome>& outcome, const coord::MachineConfig& config,
           const std::string& json_path, std::chrono::steady_clock::time_point started) {
  if (!json_path.empty()) {
    auto wall = std::chrono::steady_clock::now() - started;
    if (auto w = write_outcome_json(json_path, config, outcome, wall); !w.ok()) {
      std::fprintf(stderr, "ssi: error: %s\n", w.error().to_string().c_str());
      return 2;
    }
  }
  if (!outcome.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", outcome.error().to_string().c_str());
    return 2;
  }
  for (const auto& n : outcome->nodes)
    if (!n.last.message.empty())
      std::printf("node %u: %s\n", n.info.id.value(), n.last.message.c_str());
  std::string table = coord::format_stats_table(outcome->nodes);
  if (!table.empty()) std::printf("\nper-node stats:\n%s", table.c_str());
  if (outcome->exit_code != 0) std::fprintf(stderr, "ssi: error: %s\n", outcome->message.c_str());
  std::fflush(stdout);
  return outcome->exit_code;
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
  auto sock = coord::listen_socket("127.0.0.1", 0);
  if (!sock.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", sock.error().to_string().c_str());
    return 2;
  }
  auto [fd, port] = *sock;
  auto started = std::chrono::steady_clock::now();
  // A fresh secret per machine, handed to the node processes it forks in
  // their environment (docs/security.md).
  MachineSecret secret = MachineSecret::generate();
  setenv(kSecretEnv, secret.hex().c_str(), 1);
  std::vector<pid_t> pids;
  for (std::uint32_t id = 0; id < options.config.nodes; ++id)
    pids.push_back(spawn_node(port, id, options));

  coord::CoordinatorOptions co;
  co.listen_fd = fd;
  co.secret = secret;
  co.config = options.config;
  co.version = std::string(SSI_CLUSTER_VERSION);
  co.timing = options.timing;
  co.interrupted = &install_interrupt_flag();
  co.watchdog = [&pids]() -> std::optional<std::string> {
    for (std::size_t id = 0; id < pids.size(); ++id) {
      int status = 0;
      if (pids[id] <= 0 || waitpid(pids[id], &status, WNOHANG) != pids[id]) continue;
      pids[id] = -1;  // reaped
      if (WIFSIGNALED(status))
        return fmt::format("node {} process died: killed by signal {}", id, WTERMSIG(status));
      return fmt::format("node {} process exited early with code {}", id, WEXITSTATUS(status));
    }
    return std::nullopt;
  };
  co.on_event = options.verbose ? print_event : nullptr;
  auto outcome = coord::run_coordinator(co);
  reap(pids);
  return report(outcome, options.config, options.json_path, started);
}

int run_coordinator_command(const CoordinatorCommandOptions& options) {
  std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::string port = options.listen.substr(options.listen.rfind(':') + 1);
  std::uint16_t port_no = 0;
  if (options.listen.find(':') == std::string::npos ||
      std::sscanf(port.c_str(), "%hu", &port_no) != 1) {
    std::fprintf(stderr, "ssi: error: --listen wants HOST:PORT, got '%s'\n", options.listen.c_str());
    return 2;
  }
  auto sock = coord::listen_socket(host, port_no);
  if (!sock.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", sock.error().to_string().c_str());
    return 2;
  }
  auto secret = machine_secret("coordinator");
  if (!secret.ok()) {
    std::fprintf(stderr, "ssi: error: %s\n", secret.error().to_string().c_str());
    return 2;
  }
  coord::CoordinatorOptions co;
  co.secret = *secret;
  co.listen_fd = sock->first;
  co.config = options.config;
  co.version = std::string(SSI_CLUSTER_VERSION);
  co.interrupted = &install_interrupt_flag();
  co.on_event = print_event;
  std::fprintf(stderr, "[ssi] coordinator on %s:%u: waiting for %u nodes (ssi node --coordinator %s:%u --id K)\n",
               host.c_str(), sock->second, options.config.nodes, host.c_str(), sock->second);
  auto started = std::chrono::steady_clock::now();
  auto outcome = coord::run_coordinator(co);
  return report(outcome, options.config, options.json_path, started);
}

}  // namespace ssi::cluster
