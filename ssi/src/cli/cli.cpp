// Command-line front end. Only this TU includes CLI11 (it is slow to
// compile); each subcommand fills a plain options struct and calls into the
// library code that does the work.
#include "cli.hpp"

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cluster/launcher.hpp"
#include "cluster/node_command.hpp"
#include "cluster/workload.hpp"
#include "ssi/version.hpp"

namespace ssi::cli {
namespace {

void add_cluster_commands(CLI::App& app, int& rc) {
  auto* node = app.add_subcommand("node", "Run one node process of a machine (real hosts)");
  static cluster::NodeCommandOptions node_opts;
  node->add_option("--coordinator", node_opts.coordinator, "Coordinator HOST:PORT")->required();
  node->add_option("--id", node_opts.id, "This node's id (0..N-1)")->required();
  node->add_option("--transport", node_opts.transport, "tcp | shm | verbs")->capture_default_str();
  node->add_option("--listen", node_opts.listen, "Transport listen address (e.g. tcp:0.0.0.0:7000)");
  node->callback([&rc] { rc = cluster::run_node_command(node_opts); });

  auto* demo = app.add_subcommand("demo", "Start N node processes on this host and run a built-in workload");
  static cluster::LocalClusterOptions demo_opts;
  demo_opts.config.nodes = 2;
  demo_opts.config.workload = "ping";
  demo->add_option("--nodes", demo_opts.config.nodes, "Node processes")->capture_default_str()
      ->check(CLI::Range(1, 64));
  demo->add_option("--transport", demo_opts.config.transport, "tcp | shm | verbs")->capture_default_str();
  demo->add_option("--workload", demo_opts.config.workload, "ping")->capture_default_str();
  demo->add_option("--rounds", demo_opts.config.workload_arg, "Workload size (0 = default)");
  demo->callback([&rc] {
    demo_opts.config.phases = cluster::workload_phases(demo_opts.config.workload);
    rc = cluster::run_local_cluster(demo_opts);
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ssi: one virtual machine across many hosts (KVM + distributed shared memory)"};
  app.set_version_flag("--version", std::string(ssi::version()));
  app.require_subcommand(1);
  app.failure_message(CLI::FailureMessage::help);

  auto* version_cmd = app.add_subcommand("version", "Print the version");
  version_cmd->callback([] { std::printf("ssi %s\n", std::string(ssi::version()).c_str()); });

  int rc = 0;
  add_cluster_commands(app, rc);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return rc;
}

}  // namespace ssi::cli
