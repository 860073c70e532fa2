// Command-line front end. Only this TU includes CLI11 (it is slow to
// compile); each subcommand fills a plain options struct and calls into the
// library code that does the work. Every user error is one line on stderr
// and exit code 2.
#include "cli.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/build_info.hpp"
#include "cluster/host_port.hpp"
#include "cluster/launcher.hpp"
#include "cluster/metrics.hpp"
#include "cluster/outcome_json.hpp"
#include "cluster/node_command.hpp"
#include "cluster/workload.hpp"
#include "checkpoint_cmd.hpp"
#include "checkpoint_opts.hpp"
#include "cpuid_cmd.hpp"
#include "move_cmd.hpp"
#include "retire_cmd.hpp"
#include "qemu_args.hpp"
#include "ssi/memory_map.hpp"
#include "ssi/boot_info.h"
#include "ssi/run.hpp"
#include "ssi/version.hpp"

namespace ssi::cli {

namespace {

constexpr int kUsageError = exit_status(ExitCode::kError);

// A CLI11 validator from a Result-returning check: the error message
// becomes CLI11's, so a bad value is one line and exit 2 at parse time.
template <typename Check>
CLI::Validator check_with(std::string description, Check check) {
  return CLI::Validator(
      [check](std::string& value) -> std::string {
        auto r = check(value);
        return r.ok() ? std::string() : r.error().message;
      },
      std::move(description));
}

CLI::Validator one_of(const std::vector<std::string>& names, const char* what) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return check_with(list, [names, what, list](const std::string& v) -> Result<void> {
    if (std::find(names.begin(), names.end(), v) != names.end()) return ok();
    return make_error(Errc::kInvalidArgument, fmt::format("unknown {} '{}' (known: {})", what, v, list));
  });
}

CLI::Validator host_port(bool allow_any_port) {
  return check_with("HOST:PORT", [allow_any_port](const std::string& v) -> Result<void> {
    SSI_TRY(cluster::parse_host_port(v, allow_any_port));
    return ok();
  });
}

// `-m`: a bare number is MiB (QEMU); the option then holds the size with
// its suffix, so the library sees an unambiguous value.
CLI::Validator mem_size() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        auto bytes = parse_mem(v);
        if (!bytes.ok()) return bytes.error().message;
        v = std::to_string(*bytes);
        return {};
      },
      "SIZE");
}

// `ssi node --listen`: only the tcp form has a port to check.
CLI::Validator transport_address() {
  return check_with("tcp:HOST:PORT | shm:NAME", [](const std::string& v) -> Result<void> {
    if (!v.starts_with("tcp:")) return ok();
    SSI_TRY(cluster::parse_host_port(std::string_view(v).substr(4), true));
    return ok();
  });
}

// --json FILE: its directory must exist and be writable now, not after the run.
CLI::Validator writable_file() {
  return check_with("FILE", [](const std::string& v) -> Result<void> {
    auto slash = v.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : v.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return Error::from_errno(fmt::format("cannot write {} (directory {})", v, dir));
    return ok();
  });
}

// --metrics ADDR: a Unix socket path (its directory must exist) or HOST:PORT.
CLI::Validator metrics_address() {
  return check_with("SOCKET|HOST:PORT", [](const std::string& v) -> Result<void> {
    if (v.find('/') == std::string::npos) {
      SSI_TRY(cluster::parse_host_port(v, true));
      return ok();
    }
    auto slash = v.rfind('/');
    std::string dir = slash == 0 ? "/" : v.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
      return Error::from_errno(fmt::format("cannot create socket {} (directory {})", v, dir));
    return ok();
  });
}

// --vcpu-shares 1:3 -> weights {1, 3} for vCPUs 0, 1 (the rest: 1).
Result<std::vector<std::uint32_t>> parse_shares(const std::string& v) {
  std::vector<std::uint32_t> out;
  std::size_t at = 0;
  while (at <= v.size()) {
    auto colon = std::min(v.find(':', at), v.size());
    std::string part = v.substr(at, colon - at);
    char* end = nullptr;
    unsigned long w = std::strtoul(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0' || w < 1 || w > 100)
      return make_error(Errc::kInvalidArgument,
                        fmt::format("bad --vcpu-shares '{}': weights 1..100 separated by ':', e.g. 1:3", v));
    out.push_back(static_cast<std::uint32_t>(w));
    at = colon + 1;
  }
  return out;
}

// Resource controls and live metrics: run, demo and coordinator alike.
void add_machine_controls(CLI::App* cmd, coord::MachineConfig& config, std::string& metrics) {
  cmd->add_option("--metrics", metrics,
                  "Serve live metrics here while the machine runs (Unix socket path or "
                  "HOST:PORT): ssi stats ADDR, or Prometheus GET /metrics")
      ->check(metrics_address());
  cmd->add_option_function<std::string>(
      "--vcpu-shares",
      [&config](const std::string& v) {
        auto w = parse_shares(v);
        if (!w.ok()) throw CLI::ValidationError("--vcpu-shares", w.error().message);
        config.vcpu_shares = *w;
      },
      "CPU weight of each vCPU thread, W0:W1:... (cgroup cpu weight; e.g. 1:3)");
  cmd->add_option("--vcpu-quota", config.vcpu_quota_percent,
                  "CPU limit of each vCPU thread in % of one CPU (cgroup CFS quota; 0 = none)")
      ->check(CLI::Range(0u, 100u));
  cmd->add_option_function<std::string>(
      "--node-mem-limit",
      [&config](const std::string& v) {
        auto bytes = parse_mem(v);
        if (!bytes.ok()) throw CLI::ValidationError("--node-mem-limit", bytes.error().message);
        config.node_mem_limit = *bytes;
      },
      "Memory limit of each node process (its resident DSM pages): MiB or K/M/G suffix");
}

const std::vector<std::string> kRunTransports = {"tcp", "shm"};
const std::vector<std::string> kNodeTransports = {"tcp", "shm", "verbs"};

void add_run(CLI::App& app, machine::RunOptions& opts, int& rc) {
  auto* run = app.add_subcommand(
      "run", "Run a guest kernel (QEMU spellings work: -smp, -m, -kernel, -initrd, -append, "
             "-nographic, -serial stdio)");
  run->add_option("--vcpus", opts.vcpus, "Number of virtual CPUs")->capture_default_str();
  run->add_option_function<std::string>(
      "--smp",
      [&opts](const std::string& v) {
        auto n = parse_smp(v);
        if (!n.ok()) throw CLI::ValidationError("-smp", n.error().message);
        opts.vcpus = *n;
      },
      "QEMU -smp N[,cpus=N][,sockets=S][,cores=C][,threads=T]: the vCPU count");
  run->add_option("-m,--mem", opts.mem,
                  "Guest RAM: MiB, or a size with K/M/G suffix (e.g. 64, 64M, 1G)")
      ->capture_default_str()
      ->transform(mem_size());
  run->add_option("--kernel", opts.kernel,
                  "Kernel to boot: ELF64 test kernel, multiboot kernel or Linux bzImage")
      ->required();
  run->add_option("--initrd", opts.initrd, "Linux initrd, or the multiboot module");
  run->add_option("--append", opts.append, "Kernel command line (Linux, multiboot)");
  run->add_option("--nodes", opts.nodes, "Number of ssi node processes")
      ->capture_default_str()
      ->check(CLI::Range(1u, SSI_MAX_NODES));
  run->add_option("--transport", opts.transport, "Data path between nodes")
      ->capture_default_str()
      ->check(one_of(kRunTransports, "transport"));
  // QEMU's defaults, which are ssi's only behaviour: no display, the
  // serial console on stdio.
  static bool nographic = false;
  static std::string serial = "stdio";
  run->add_flag("--nographic", nographic, "QEMU -nographic: accepted (ssi has no display)");
  run->add_option("--serial", serial, "QEMU -serial: only 'stdio' (the console is on stdout)")
      ->check(CLI::IsMember({"stdio", "mon:stdio"}));
  static std::string json_path;
  run->add_option("--json", json_path, "Also write the config, exit reason and counters as JSON")
      ->check(writable_file());
  static coord::MachineConfig controls;
  static std::string metrics;
  add_machine_controls(run, controls, metrics);
  add_checkpoint_options(run, opts);
  run->add_option_function<std::string>("--placement", [](const std::string& v) {
    if (!(controls.placement_auto = v == "auto")) throw CLI::ValidationError("--placement", "ssi run takes auto");
  }, "auto: each vCPU moves to the node serving most of its memory (--nodes > 1, docs/mobility.md)");
  run->add_option("--standby", controls.standby, "More node processes with no vCPU and no memory, to take a retired node's share (ssi retire, docs/mobility.md)")
      ->check(CLI::Range(0u, SSI_MAX_NODES));
  // --nodes > 1: a coordinator here and N `ssi node` processes running the
  // "guest" workload; node 0 streams the console to our stdout.
  opts.run_on_nodes = [](const machine::RunOptions& o, std::uint64_t mem) -> Result<int> {
    cluster::LocalClusterOptions lo;
    lo.config.nodes = o.nodes + controls.standby;
    lo.config.standby = controls.standby;
    lo.config.vcpus = o.vcpus;
    lo.config.mem_bytes = mem;
    lo.config.transport = o.transport;
    lo.config.workload = "guest";
    lo.config.kernel = o.kernel;
    lo.config.initrd = o.initrd;
    lo.config.append = o.append;
    lo.verbose = false;
    lo.json_path = json_path;
    lo.metrics = metrics;
    lo.config.vcpu_shares = controls.vcpu_shares;
    lo.config.vcpu_quota_percent = controls.vcpu_quota_percent;
    lo.config.node_mem_limit = controls.node_mem_limit;
    lo.config.placement_auto = controls.placement_auto;
    lo.checkpoint = {o.checkpoint_dir, o.checkpoint_after_s, o.checkpoint_on};
    lo.config.restore_dir = o.restore_dir;
    return cluster::run_local_cluster(lo);
  };
  run->callback([&opts, &rc] {
    // For tests on hosts with or without KVM: point ssi at another device node.
    if (const char* dev = std::getenv("SSI_KVM_DEVICE")) opts.kvm_device = dev;
    opts.via_nodes = !metrics.empty() || controls.standby != 0 || controls.placement_auto || !controls.vcpu_shares.empty() ||
                     controls.vcpu_quota_percent != 0 || controls.node_mem_limit != 0;
    auto started = std::chrono::steady_clock::now();
    auto result = machine::run(opts);
    if (!result.ok()) {
      std::fprintf(stderr, "ssi: error: %s\n", result.error().message.c_str());
      rc = kUsageError;
      return;
    }
    rc = *result;
    // One node: no coordinator and no node reports, only the config and exit.
    if (opts.nodes == 1 && !json_path.empty()) {
      coord::MachineConfig c;
      c.vcpus = opts.vcpus;
      c.mem_bytes = machine::parse_size(opts.mem).value();
      c.workload = "guest";
      c.kernel = opts.kernel;
      coord::Outcome o{rc, rc == 0 ? "guest exited" : fmt::format("guest exited with code {}", rc), rc != 0, {}};
      auto w = cluster::write_outcome_json(json_path, c, o, {std::chrono::steady_clock::now() - started, 0});
      if (!w.ok()) std::fprintf(stderr, "ssi: error: %s\n", w.error().to_string().c_str());
    }
  });
}

// --workload/--rounds/--json, shared by `coordinator` and `demo`; the phase
// count follows from the workload once parsed.
void add_workload_options(CLI::App* cmd, coord::MachineConfig& config, std::string& json_path) {
  config.workload = "dsm-demo";
  cmd->add_option("--workload", config.workload, "What the nodes run")
      ->capture_default_str()
      ->check(one_of(cluster::workload_names(), "workload"));
  cmd->add_option("--rounds", config.workload_arg, "Workload size (0 = default)");
  cmd->add_option("--json", json_path, "Also write the outcome and per-node counters as JSON")
      ->check(writable_file());
}

// `ssi coordinator --kernel ...`: the coordinator takes the guest machine
// (any kernel `ssi run --nodes N` boots: ssi ELF, multiboot, bzImage);
// every node checks it has the same kernel file (SHA-256); node 0 alone
// reads the initrd.
void add_guest_options(CLI::App* cmd, coord::MachineConfig& config) {
  cmd->add_option_function<std::string>(
         "--kernel",
         [&config](const std::string& v) {
           config.kernel = v;
           config.workload = "guest";
         },
         "Guest kernel (ssi ELF, multiboot or bzImage): runs the guest on the nodes (same path on every host)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--initrd", config.initrd, "Linux initrd, or the multiboot module (read by node 0)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--append", config.append, "Kernel command line (Linux, multiboot)");
  cmd->add_option("--vcpus", config.vcpus, "Guest vCPUs (with --kernel)")->check(CLI::Range(1, 256));
  cmd->add_option_function<std::string>(
      "-m,--mem",
      [&config](const std::string& v) {
        auto bytes = parse_mem(v);
        if (!bytes.ok()) throw CLI::ValidationError("--mem", bytes.error().message);
        config.mem_bytes = *bytes;
      },
      "Guest RAM (with --kernel): MiB, or K/M/G suffix (default 64M)");
  cmd->add_option_function<std::string>(
      "--placement",
      [&config](const std::string& v) {
        config.vcpu_node.clear();
        if ((config.placement_auto = v == "auto")) return;  // round robin, then moves (docs/mobility.md)
        for (std::size_t at = 0; at <= v.size();) {
          auto comma = std::min(v.find(',', at), v.size());
          std::string part = v.substr(at, comma - at);
          if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 4)
            throw CLI::ValidationError("--placement", "a node id per vCPU, e.g. 0,0,1,1");
          config.vcpu_node.push_back(static_cast<std::uint32_t>(std::stoul(part)));
          at = comma + 1;
        }
      },
      "Node of each vCPU, e.g. 0,0,1,1 (default round robin; the BSP, vCPU 0, needs node 0), "
      "or auto: round robin, then each vCPU moves to the node serving most of its memory");
  cmd->add_option("--transport", config.transport, "Data path the nodes use (informational: "
                                                    "each `ssi node --transport` must match)")
      ->check(one_of(kNodeTransports, "transport"));
}

void add_cluster_commands(CLI::App& app, int& rc) {
  auto* node = app.add_subcommand("node", "Run one node process of a machine (real hosts)");
  static cluster::NodeCommandOptions node_opts;
  node->add_option("--coordinator", node_opts.coordinator, "Coordinator HOST:PORT")
      ->required()
      ->check(host_port(false));
  node->add_option("--id", node_opts.id, "This node's id (0..N-1)")->required();
  node->add_option("--transport", node_opts.transport, "Data path to the other nodes")
      ->capture_default_str()
      ->check(one_of(kNodeTransports, "transport"));
  node->add_option("--listen", node_opts.listen, "Transport listen address (e.g. tcp:0.0.0.0:7000)")
      ->check(transport_address());
  node->add_option_function<double>(
          "--join-timeout",
          [](double s) { node_opts.join_timeout = std::chrono::milliseconds(static_cast<long>(s * 1000)); },
          "Seconds to keep retrying to reach the coordinator (default 60)")
      ->check(CLI::Range(0.0, 86400.0));
  node->callback([&rc] { rc = cluster::run_node_command(node_opts); });

  auto* coordinator = app.add_subcommand(
      "coordinator", "Run the coordinator for nodes started on other hosts (ssh, Slurm, mpirun)");
  static cluster::CoordinatorCommandOptions coord_opts;
  coordinator->add_option("--listen", coord_opts.listen, "HOST:PORT to listen on (port 0: any)")
      ->capture_default_str()
      ->check(host_port(true));
  coordinator->add_option("--nodes", coord_opts.config.nodes, "Nodes to wait for")
      ->required()
      ->check(CLI::Range(1u, SSI_MAX_NODES));
  coordinator->add_option("--standby", coord_opts.config.standby,
                          "More nodes with no vCPU and no memory, to take a retired node's share (ssi "
                          "retire ADDR, needs --metrics ADDR); it then waits for NODES+S nodes, the "
                          "standby ones with ids NODES..NODES+S-1")
      ->check(CLI::Range(0u, SSI_MAX_NODES));
  add_workload_options(coordinator, coord_opts.config, coord_opts.json_path);
  add_machine_controls(coordinator, coord_opts.config, coord_opts.metrics);
  add_guest_options(coordinator, coord_opts.config);
  coordinator->callback([&rc] {
    if (coord_opts.config.nodes + coord_opts.config.standby > SSI_MAX_NODES)
      throw CLI::ValidationError("--standby", fmt::format("--nodes {} plus --standby {} is more than {} nodes",
                                                          coord_opts.config.nodes, coord_opts.config.standby,
                                                          SSI_MAX_NODES));
    rc = cluster::run_coordinator_command(coord_opts);
  });

  auto* demo = app.add_subcommand(
      "demo", "Start N node processes on this host and run a built-in host-level workload");
  static cluster::LocalClusterOptions demo_opts;
  demo_opts.config.nodes = 2;
  demo->add_option("--nodes", demo_opts.config.nodes, "Node processes")
      ->capture_default_str()
      ->check(CLI::Range(1u, SSI_MAX_NODES));  // checked here, before any process starts
  demo->add_option("--transport", demo_opts.config.transport, "Data path between the nodes")
      ->capture_default_str()
      ->check(one_of(kNodeTransports, "transport"));
  demo_opts.config.vcpus = 0;  // the workload's default (machine-demo, vcpu-spin: 2 per node)
  demo->add_option("--vcpus", demo_opts.config.vcpus,
                   "vCPUs of machine-demo / vcpu-spin (default 2 per node)")
      ->check(CLI::Range(0, 256));
  add_workload_options(demo, demo_opts.config, demo_opts.json_path);
  demo->add_option("--kernel", demo_opts.config.kernel,
                   "machine-demo: guest kernel (ssi ELF test kernel) to run on real vCPUs where "
                   "KVM is usable (without one, or without KVM: the host-level DSM demo)")
      ->check(CLI::ExistingFile);
  add_machine_controls(demo, demo_opts.config, demo_opts.metrics);
  demo->callback([&rc] { rc = cluster::run_local_cluster(demo_opts); });

  auto* stats = app.add_subcommand("stats", "Print a running machine's live counters (--metrics ADDR)");
  static std::string stats_address;
  static bool stats_json = false;
  stats->add_option("address", stats_address, "The machine's --metrics SOCKET or HOST:PORT")->required();
  stats->add_flag("--json", stats_json, "Print the QMP-style JSON reply instead of tables");
  stats->callback([&rc] { rc = cluster::run_stats_command(stats_address, stats_json); });
  auto* move = app.add_subcommand("move", "Move a running machine's vCPU: ssi move ADDR --vcpu K --to NODE")->prefix_command();
  move->callback([&rc, move] { rc = run_move_command(move->remaining()); });
  auto* ckpt = app.add_subcommand("checkpoint", "Checkpoint a running machine: ssi checkpoint ADDR --dir DIR [--continue]")->prefix_command();
  ckpt->callback([&rc, ckpt] { rc = run_checkpoint_command(ckpt->remaining()); });
  auto* retire = app.add_subcommand("retire", "Retire a running machine's node: ssi retire ADDR --node A [--to B]")->prefix_command();
  retire->callback([&rc, retire] { rc = run_retire_command(retire->remaining()); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ssi: one virtual machine across many hosts (KVM + distributed shared memory)"};
  app.name("ssi");
  app.set_version_flag("--version", std::string(ssi::version()));
  app.require_subcommand(1);

  int rc = 0;
  auto* version_cmd = app.add_subcommand("version", "Print the version");
  version_cmd->callback([] {
    std::printf("ssi %s (git %s)\n", std::string(ssi::version()).c_str(),
                std::string(cluster::git_revision()).c_str());
  });
  static CpuidCommandOptions cpuid_opts;
  auto* cpuid_cmd = app.add_subcommand(
      "cpuid", "Print the CPUID leaves ssi's vCPUs present on this host (its policy applied to KVM's)");
  cpuid_cmd->add_option("--apic-id", cpuid_opts.apic_id,
                        "As the vCPU with this APIC id sees them (CPUID.1:EBX[31:24], leaf 0xB)")
      ->capture_default_str();
  cpuid_cmd->add_option("--leaf", cpuid_opts.leaf, "Only this leaf, e.g. 0x7 (every sub-leaf)");
  cpuid_cmd->callback([&rc] { rc = run_cpuid_command(cpuid_opts); });
  machine::RunOptions run_opts;
  add_run(app, run_opts, rc);
  add_cluster_commands(app, rc);

  std::vector<std::string> args = qemu_aliases(argc, argv);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ssi: error: %s (see ssi --help)\n", e.what());
    return kUsageError;
  }
  return rc;
}

}  // namespace ssi::cli
