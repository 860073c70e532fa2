// dsm_node_helper: one DSM node process of the multi-process tests. Nodes
// find each other through files in a shared directory (addr.K, then barrier
// files), so the parent test only spawns and collects output.
//   dsm_node_helper ID NODES TRANSPORT DIR WORKLOAD ITERS THREADS
// WORKLOAD: counter | SB | MP | LB | IRIW | lost-home | lost-owner. Prints
// JSON result lines on stdout. Exit 0 ok, 77 transport unsupported, 1 error,
// 3 timeout, or (lost-*) the node was lost as expected (ExitCode::kNodeLost).
//
// lost-home (2 nodes): node 0, home of page 0, stalls and is killed while
// node 1 faults on page 0. lost-owner (3 nodes): node 2 takes page 0 (homed
// on node 0) in M, stalls and is killed while node 1 reads page 0, so the
// home's fetch to node 2 is never answered. Every survivor's transport
// reports the peer down, its DSM fails the fault, and the faulting thread is
// released: it prints how long it waited and the failure, and exits with 3.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/exit_code.hpp"
#include "dsm/node.hpp"
#include "litmus.hpp"
#include "rdma/factory.hpp"

namespace fs = std::filesystem;
using namespace ssi;
using namespace ssi::dsm;
using namespace std::chrono_literals;

namespace {

constexpr auto kStepTimeout = 30s;

[[noreturn]] void die(int code, const std::string& why) {
  std::fprintf(stderr, "node helper: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(code);
}

void write_file(const fs::path& p, const std::string& content) {
  fs::path tmp = p;
  tmp += ".tmp";
  std::ofstream(tmp) << content;
  fs::rename(tmp, p);
}

// Waits until `name`.0 .. `name`.(n-1) exist in dir.
void barrier(const fs::path& dir, const std::string& name, std::uint32_t self, std::uint32_t n) {
  write_file(dir / (name + "." + std::to_string(self)), "1");
  auto until = std::chrono::steady_clock::now() + kStepTimeout;
  for (std::uint32_t k = 0; k < n;) {
    if (fs::exists(dir / (name + "." + std::to_string(k)))) {
      ++k;
      continue;
    }
    if (std::chrono::steady_clock::now() > until) die(3, "timeout at barrier " + name);
    std::this_thread::sleep_for(1ms);
  }
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Runner {
  std::unique_ptr<rdma::Reactor> reactor;
  std::unique_ptr<rdma::Transport> transport;
  std::unique_ptr<Node> node;
  std::thread thread;

  template <typename F>
  void run_on(F&& fn) {
    std::promise<void> done;
    reactor->post([&] {
      fn();
      done.set_value();
    });
    if (done.get_future().wait_for(kStepTimeout) != std::future_status::ready)
      die(3, "reactor task timed out");
  }
};

void counter_workload(Node& node, std::uint32_t threads, std::uint64_t iters) {
  auto* counter = reinterpret_cast<std::uint64_t*>(node.base());  // page 0, homed on node 0
  std::vector<std::thread> ts;
  for (std::uint32_t t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (std::uint64_t i = 0; i < iters; ++i) {
        __atomic_fetch_add(counter, 1, __ATOMIC_SEQ_CST);  // lock xadd on the DSM page
        if (i % 8 == 0) std::this_thread::yield();  // let the page move between nodes
      }
    });
  for (auto& t : ts) t.join();
}

// Prints the result line, then stops the node, its transport and reactor.
void report_and_stop(Runner& r, const nlohmann::json& result) {
  std::printf("%s\n", result.dump().c_str());
  std::fflush(stdout);
  r.run_on([&] {
    r.node->stop();
    r.transport->shutdown();
  });
  r.reactor->stop();
  r.thread.join();
}

// lost-home / lost-owner (see the top of the file).
int lost_node(Runner& r, const fs::path& dir, std::uint32_t self, std::uint32_t nodes,
              const std::string& workload) {
  const std::uint32_t victim = workload == "lost-home" ? 0 : 2;
  const std::uint32_t needed = workload == "lost-home" ? 2 : 3;
  if (nodes != needed) die(1, workload + " needs " + std::to_string(needed) + " nodes");
  auto* word = reinterpret_cast<volatile std::uint64_t*>(r.node->base());  // page 0, homed on node 0
  if (self == victim && workload == "lost-owner") *word = 42;  // page 0 in M here
  barrier(dir, "owned", self, nodes);
  if (self == victim) {
    // Stall (the reactor answers nothing from now on), then die.
    r.reactor->post([&] {
      write_file(dir / "stalled", "1");
      std::this_thread::sleep_for(60s);
    });
    while (!fs::exists(dir / "stalled")) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(500ms);  // the survivor's fault is in flight by now
    std::fflush(nullptr);
    raise(SIGKILL);
  }
  while (!fs::exists(dir / "stalled")) std::this_thread::sleep_for(1ms);
  nlohmann::json result{{"node", self}, {"workload", workload}};
  auto t0 = std::chrono::steady_clock::now();
  if (self == 1) {
    std::uint64_t seen = 0;
    std::thread faulter([&] { seen = *word; });  // blocks in the kernel until released
    faulter.join();
    result["value"] = seen;
  } else {
    // The home of page 0 (lost-owner): nothing faults here; it learns of the
    // death from its own transport.
    while (!r.node->failure() && std::chrono::steady_clock::now() - t0 < kStepTimeout)
      std::this_thread::sleep_for(1ms);
  }
  result["waited_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - t0).count();
  auto failure = r.node->failure();
  result["failure"] = failure ? failure->message : "";
  result["failed_faults"] = r.node->stats().failed_faults.load();
  report_and_stop(r, result);
  return failure ? exit_status(ExitCode::kNodeLost) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) die(1, "usage: ID NODES TRANSPORT DIR WORKLOAD ITERS THREADS");
  const auto self = static_cast<std::uint32_t>(std::stoul(argv[1]));
  const auto nodes = static_cast<std::uint32_t>(std::stoul(argv[2]));
  const std::string kind = argv[3];
  const fs::path dir = argv[4];
  const std::string workload = argv[5];
  const std::uint64_t iters = std::stoull(argv[6]);
  const auto threads = static_cast<std::uint32_t>(std::stoul(argv[7]));
  alarm(120);  // a lost parent never leaves a node behind

  Runner r;
  auto reactor = rdma::Reactor::create();
  if (!reactor.ok()) die(1, reactor.error().to_string());
  r.reactor = std::move(*reactor);
  r.thread = std::thread([&] { r.reactor->run(); });

  Result<void> status;
  r.run_on([&] {
    rdma::TransportConfig tc;
    tc.kind = kind;
    tc.self = NodeId{self};
    if (kind == "tcp") tc.listen = "tcp:127.0.0.1:0";
    auto t = rdma::make_transport(tc, *r.reactor);
    if (!t.ok()) status = std::move(t).error();
    else r.transport = std::move(*t);
  });
  if (!status.ok()) die(status.error().code == Errc::kUnsupported ? 77 : 1, status.error().to_string());
  write_file(dir / ("addr." + std::to_string(self)), r.transport->local_address());
  barrier(dir, "listening", self, nodes);

  r.run_on([&] {
    // Each pair is connected once, by the higher id: the lower one accepts.
    for (std::uint32_t k = 0; k < self && status.ok(); ++k)
        status = r.transport->connect(NodeId{k}, read_file(dir / ("addr." + std::to_string(k))));
    if (!status.ok()) return;
    NodeConfig cfg;
    cfg.self = NodeId{self};
    cfg.nodes = nodes;
    cfg.bytes = testing::kLitmusPages * kPageSize;
    cfg.on_fault_failed = [](PageNo, const Error& e) {
      std::fprintf(stderr, "node helper: fault failed: %s\n", e.message.c_str());
    };
    auto n = Node::create(cfg, *r.reactor, *r.transport);
    if (!n.ok()) {
      status = std::move(n).error();
      return;
    }
    r.node = std::move(*n);
    r.transport->on_peer_down([node = r.node.get()](NodeId peer, const Error& why) {
      node->peer_failed(peer, why);
    });
    status = r.node->start();
  });
  if (!status.ok()) die(1, status.error().to_string());
  barrier(dir, "ready", self, nodes);

  nlohmann::json result{{"node", self}, {"workload", workload}};
  if (workload == "lost-home" || workload == "lost-owner") return lost_node(r, dir, self, nodes, workload);
  if (workload == "counter") {
    counter_workload(*r.node, threads, iters);
    barrier(dir, "counted", self, nodes);
    if (self == 0) result["counter"] = __atomic_load_n(reinterpret_cast<std::uint64_t*>(r.node->base()), __ATOMIC_SEQ_CST);
  } else {
    auto test = testing::litmus_by_name(workload);
    if (!test) die(1, "unknown workload " + workload);
    auto out = testing::run_litmus(*test, *r.node, self, nodes, iters, kStepTimeout);
    if (!out.ok()) die(3, out.error().to_string());
    if (self == 0) result["litmus"] = *out;
  }
  barrier(dir, "finished", self, nodes);
  const auto& s = r.node->stats();
  result["stats"] = {{"read_faults", s.read_faults.load()},     {"write_faults", s.write_faults.load()},
                     {"upgrade_faults", s.upgrade_faults.load()}, {"fetches_sent", s.fetches_sent.load()},
                     {"bad_messages", s.bad_messages.load()},
                     {"local_errors", s.local_errors.load()},     {"summary", s.summary()}};
  report_and_stop(r, result);
  return 0;
}
