// Command-line front end. Only this TU includes CLI11 (it is slow to
// compile); each subcommand fills a plain options struct and calls into the
// library code that does the work. Every user error is one line on stderr
// and exit code 2.
#include "cli.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "cluster/launcher.hpp"
#include "cluster/node_command.hpp"
#include "cluster/workload.hpp"
#include "ssi/boot_info.h"
#include "ssi/run.hpp"
#include "ssi/version.hpp"

namespace ssi::cli {

namespace {

constexpr int kUsageError = 2;

// QEMU habits: single-dash long options become their ssi spelling.
std::vector<std::string> qemu_aliases(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-smp") {
      args.emplace_back("--vcpus");
    } else if (a == "-kernel") {
      args.emplace_back("--kernel");
    } else if (a == "-initrd") {
      args.emplace_back("--initrd");
    } else if (a == "-append") {
      args.emplace_back("--append");
    } else {
      args.emplace_back(a);
    }
  }
  return args;
}

void add_run(CLI::App& app, machine::RunOptions& opts, int& rc) {
  auto* run = app.add_subcommand("run", "Run a guest kernel on this host");
  run->add_option("--vcpus,--smp", opts.vcpus, "Number of virtual CPUs")
      ->capture_default_str();
  run->add_option("-m,--mem", opts.mem, "Guest RAM size (e.g. 64M, 1G; a multiple of 2 MiB)")
      ->capture_default_str();
  run->add_option("--kernel", opts.kernel,
                  "Kernel to boot: ELF64 test kernel, multiboot kernel or Linux bzImage")
      ->required();
  run->add_option("--initrd", opts.initrd, "Linux initrd, or the multiboot module");
  run->add_option("--append", opts.append, "Kernel command line (Linux, multiboot)");
  run->add_option("--nodes", opts.nodes, "Number of ssi node processes")
      ->capture_default_str()
      ->check(CLI::Range(1u, SSI_MAX_NODES));
  run->add_option("--transport", opts.transport, "Data path between nodes: tcp | shm")
      ->capture_default_str();
  // --nodes > 1: a coordinator here and N `ssi node` processes running the
  // "guest" workload; node 0 streams the console to our stdout.
  opts.run_on_nodes = [](const machine::RunOptions& o, std::uint64_t mem) -> Result<int> {
    cluster::LocalClusterOptions lo;
    lo.config.nodes = o.nodes;
    lo.config.vcpus = o.vcpus;
    lo.config.mem_bytes = mem;
    lo.config.transport = o.transport;
    lo.config.workload = "guest";
    lo.config.phases = cluster::workload_phases("guest");
    lo.config.kernel = o.kernel;
    lo.verbose = false;
    return cluster::run_local_cluster(lo);
  };
  run->callback([&opts, &rc] {
    // For tests on hosts with or without KVM: point ssi at another device node.
    if (const char* dev = std::getenv("SSI_KVM_DEVICE")) opts.kvm_device = dev;
    auto result = machine::run(opts);
    if (!result.ok()) {
      std::fprintf(stderr, "ssi: error: %s\n", result.error().message.c_str());
      rc = kUsageError;
      return;
    }
    rc = *result;
  });
}

// --workload/--rounds/--json, shared by `coordinator` and `demo`; the phase
// count follows from the workload once parsed.
void add_workload_options(CLI::App* cmd, coord::MachineConfig& config, std::string& json_path) {
  config.workload = "dsm-demo";
  cmd->add_option("--workload", config.workload, cluster::kWorkloadNames)->capture_default_str();
  cmd->add_option("--rounds", config.workload_arg, "Workload size (0 = default)");
  cmd->add_option("--json", json_path, "Also write the outcome and per-node counters as JSON");
  cmd->parse_complete_callback(
      [&config] { config.phases = cluster::workload_phases(config.workload); });
}

void add_cluster_commands(CLI::App& app, int& rc) {
  auto* node = app.add_subcommand("node", "Run one node process of a machine (real hosts)");
  static cluster::NodeCommandOptions node_opts;
  node->add_option("--coordinator", node_opts.coordinator, "Coordinator HOST:PORT")->required();
  node->add_option("--id", node_opts.id, "This node's id (0..N-1)")->required();
  node->add_option("--transport", node_opts.transport, "tcp | shm | verbs")->capture_default_str();
  node->add_option("--listen", node_opts.listen, "Transport listen address (e.g. tcp:0.0.0.0:7000)");
  node->callback([&rc] { rc = cluster::run_node_command(node_opts); });

  auto* coordinator = app.add_subcommand(
      "coordinator", "Run the coordinator for nodes started on other hosts (ssh, Slurm, mpirun)");
  static cluster::CoordinatorCommandOptions coord_opts;
  coordinator->add_option("--listen", coord_opts.listen, "HOST:PORT to listen on")
      ->capture_default_str();
  coordinator->add_option("--nodes", coord_opts.config.nodes, "Nodes to wait for")
      ->required()
      ->check(CLI::Range(1u, SSI_MAX_NODES));
  add_workload_options(coordinator, coord_opts.config, coord_opts.json_path);
  coordinator->callback([&rc] { rc = cluster::run_coordinator_command(coord_opts); });

  auto* demo = app.add_subcommand(
      "demo", "Start N node processes on this host and run a built-in host-level workload");
  static cluster::LocalClusterOptions demo_opts;
  demo_opts.config.nodes = 2;
  demo->add_option("--nodes", demo_opts.config.nodes, "Node processes")
      ->capture_default_str()
      ->check(CLI::Range(1u, SSI_MAX_NODES));  // checked here, before any process starts
  demo->add_option("--transport", demo_opts.config.transport, "tcp | shm | verbs")
      ->capture_default_str();
  add_workload_options(demo, demo_opts.config, demo_opts.json_path);
  demo->callback([&rc] { rc = cluster::run_local_cluster(demo_opts); });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ssi: one virtual machine across many hosts (KVM + distributed shared memory)"};
  app.name("ssi");
  app.set_version_flag("--version", std::string(ssi::version()));
  app.require_subcommand(1);

  int rc = 0;
  auto* version_cmd = app.add_subcommand("version", "Print the version");
  version_cmd->callback([] { std::printf("ssi %s\n", std::string(ssi::version()).c_str()); });
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
