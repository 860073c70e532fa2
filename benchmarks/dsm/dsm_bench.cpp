// DSM microbenchmarks on N in-process nodes (one reactor thread per node) over
// a real transport backend. Every benchmark measures the floor in the same
// run and reports median/p99 per fault, floor and ratio as counters.
// Transports: SSI_BENCH_TRANSPORTS (default "loopback,tcp,shm"; unavailable
// ones are skipped). CPU placement: SSI_BENCH_CPUS (see bench_common.hpp).
#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <atomic>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "bench_common.hpp"

namespace ssi::dsm::bench {
namespace {

using testing::LocalCluster;

std::uint64_t& word_at(Node& n, std::uint64_t page, std::uint64_t off = 0) {
  return *reinterpret_cast<std::uint64_t*>(n.base() + page * kPageSize + off);
}
std::uint64_t read_word(Node& n, std::uint64_t page) {
  return std::atomic_ref<std::uint64_t>(word_at(n, page)).load();
}
void write_word(Node& n, std::uint64_t page, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(word_at(n, page)).store(v);
}

std::vector<HomeMap::Range> all_on(std::uint64_t pages, std::uint32_t node) {
  return {{PageNo{0}, PageNo{pages}, NodeId{node}}};
}

void report(benchmark::State& state, Samples& s, const Floor& f,
            const std::optional<FaultModel>& m = std::nullopt) {
  state.counters["median_us"] = s.median();
  state.counters["p99_us"] = s.quantile(0.99);
  state.counters["floor_us"] = f.total();
  state.counters["floor_uffd_us"] = f.uffd_us;
  state.counters["floor_rpc_us"] = f.rpc_us;
  state.counters["wp_us"] = f.wp_us;
  state.counters["drop_us"] = f.drop_us;
  state.counters["ratio"] = f.total() > 0 ? s.median() / f.total() : 0;
  if (!m) return;
  state.counters["delays_min"] = m->min.delays;
  state.counters["delays_ssi"] = m->ssi.delays;
  state.counters["model_min_us"] = m->us(f, m->min);
  state.counters["model_ssi_us"] = m->us(f, m->ssi);
  state.counters["ratio_model_min"] = m->us(f, m->min) > 0 ? s.median() / m->us(f, m->min) : 0;
  state.counters["ratio_model_ssi"] = m->us(f, m->ssi) > 0 ? s.median() / m->us(f, m->ssi) : 0;
}

std::unique_ptr<LocalCluster> setup(benchmark::State& state, const std::string& transport,
                                    std::uint32_t nodes, std::uint64_t pages,
                                    std::vector<HomeMap::Range> homes = {},
                                    std::function<void(NodeConfig&)> configure = {}) {
  auto c = make_bench_cluster(transport, nodes, pages, std::move(homes), std::move(configure));
  if (!c.ok()) {
    state.SkipWithError(("cluster: " + c.error().to_string()).c_str());
    return nullptr;
  }
  testing::pin_this_thread(cpu_of_node(0));
  return std::move(*c);
}

// Node 0 reads a page of node 1 (its home). source=0 (owner is the home):
// last written by the home itself, so the home first downgrades its own M
// copy (write-protect) and then grants 4 KiB. source=1 (memory): node 2 read
// it after that write, so the home serves its memory copy at once (request +
// 4 KiB grant, the floor's shape). source=2 (forwarded): node 2 wrote it
// last, so the home sends node 2 a Fetch and node 2 grants node 0 itself
// (3 one-way delays). Node 0 installs with UFFDIO_COPY|WP.
void BM_RemoteReadFault(benchmark::State& state, std::string transport) {
  const int source = static_cast<int>(state.range(0));
  constexpr std::uint64_t kPages = 256;
  auto c = setup(state, transport, source == 0 ? 2 : 3, kPages, all_on(kPages, 1));
  if (!c) return;
  Floor floor = measure_floor(*c);
  auto rewrite = [&] {
    const std::uint32_t writer = source == 2 ? 2 : 1;
    on_host_of(writer, [&] {
      for (std::uint64_t p = 0; p < kPages; ++p) write_word(c->node(writer), p, p + 1);
    });
    if (source == 1)
      on_host_of(2, [&] {
        for (std::uint64_t p = 0; p < kPages; ++p) benchmark::DoNotOptimize(read_word(c->node(2), p));
      });
  };
  rewrite();
  Samples s;
  std::uint64_t i = 0, sum = 0;
  for (auto _ : state) {
    if (i == kPages) {
      state.PauseTiming();
      rewrite();  // invalidates node 0's copies
      i = 0;
      state.ResumeTiming();
    }
    auto t0 = Clock::now();
    sum += read_word(c->node(0), i++);
    s.add(us_since(t0));
  }
  benchmark::DoNotOptimize(sum);
  // Request to the home, grant with the page; from the home's own M copy
  // the home write-protects it first; from a third node's M copy the home
  // forwards the request and the owner grants (after its write-protect).
  const int delays = source == 2 ? 3 : 2;
  report(state, s, floor, FaultModel{{delays, 1, source != 1}, {delays, 1, source != 1}});
  state.counters["forwarded_per_fault"] =
      static_cast<double>(c->node(0).stats().path_faults[kPathReadForwarded].load()) /
      static_cast<double>(std::max<std::size_t>(s.us.size(), 1));
}

// Node 0 writes a page held in S by `sharers` other nodes (and in M-then-S
// by the home, node sharers+1): the home invalidates them in parallel.
void BM_WriteFault(benchmark::State& state, std::string transport) {
  const auto sharers = static_cast<std::uint32_t>(state.range(0));
  const std::uint32_t home = sharers + 1;
  constexpr std::uint64_t kPages = 128;
  auto c = setup(state, transport, sharers + 2, kPages, all_on(kPages, home));
  if (!c) return;
  Floor floor = measure_floor(*c);
  auto prepare = [&] {
    on_host_of(home, [&] {
      for (std::uint64_t p = 0; p < kPages; ++p) write_word(c->node(home), p, p);
    });
    for (std::uint32_t k = 1; k <= sharers; ++k)
      on_host_of(k, [&] {
        for (std::uint64_t p = 0; p < kPages; ++p) benchmark::DoNotOptimize(read_word(c->node(k), p));
      });
  };
  prepare();
  Samples s;
  std::uint64_t i = 0;
  for (auto _ : state) {
    if (i == kPages) {
      state.PauseTiming();
      prepare();
      i = 0;
      state.ResumeTiming();
    }
    auto t0 = Clock::now();
    write_word(c->node(0), i++, 7);
    s.add(us_since(t0));
  }
  // No sharer: request, grant (the home drops its own copy). Sharers: the
  // home sends the Invs and the grant together, the sharers ack node 0
  // directly (3 delays, whatever their number).
  if (sharers == 0) report(state, s, floor, FaultModel{{2, 1, 0, 1}, {2, 1, 0, 1}});
  else report(state, s, floor, FaultModel{{3, 1, 0, 1}, {3, 1, 0, 1}});
  state.counters["acks_per_fault"] = static_cast<double>(c->node(0).stats().sharer_acks.load()) /
                                     static_cast<double>(std::max<std::size_t>(s.us.size(), 1));
}

// First touch of never-written pages: the home grants zero-fill, no 4 KiB
// transfer (bytes_per_fault must be 0).
void BM_ZeroFillFirstTouch(benchmark::State& state, std::string transport) {
  constexpr std::uint64_t kPages = 1u << 16;  // virtual only; untouched pages cost nothing
  auto c = setup(state, transport, 2, kPages, all_on(kPages, 1));
  if (!c) return;
  Floor floor = measure_floor(*c);
  Samples s;
  std::uint64_t i = 0, sum = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    sum += read_word(c->node(0), i++ % kPages);
    s.add(us_since(t0));
  }
  benchmark::DoNotOptimize(sum);
  report(state, s, floor, FaultModel{{2}, {2}});
  state.counters["bytes_per_fault"] =
      static_cast<double>(c->node(0).stats().bytes_received.load()) / static_cast<double>(i);
  state.counters["zero_fills"] = static_cast<double>(c->node(0).stats().zero_fills.load());
}

// Hot-page handling a ping-pong / false-sharing run uses (the arg "hot"):
// 0 = neither (every read miss granted S, the default), 1 = migratory pages
// (a read miss of one is granted M), 2 = migratory and a 2 ms hot-page hold.
// SSI_DSM_MIGRATORY / SSI_DSM_HOT_HOLD_US, if set, override these.
std::function<void(NodeConfig&)> hot_mode(benchmark::State& state) {
  const auto mode = state.range(0);
  state.SetLabel(mode == 0 ? "no migratory, no hot hold" : mode == 1 ? "migratory" : "migratory + hot hold");
  return [mode](NodeConfig& cfg) {
    cfg.hot.migratory = mode >= 1;
    cfg.hot.hold = std::chrono::microseconds(mode >= 2 ? 2000 : 0);
  };
}

void report_hot(benchmark::State& state, LocalCluster& c, std::size_t units) {
  const double n = static_cast<double>(std::max<std::size_t>(units, 1));
  std::uint64_t upgrades = 0, reads = 0, hot_holds = 0, hold_ns = 0, clean = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    const auto& s = c.node(i).stats();
    upgrades += s.upgrade_faults.load();
    reads += s.read_faults.load();
    hot_holds += s.hot_holds.load();
    hold_ns += s.hold_ns.load();
    clean += s.clean_handovers.load();
  }
  // Node 0 is the home: it counts the handovers and migratory grants.
  state.counters["migrations_per_round"] = static_cast<double>(c.node(0).stats().page_migrations.load()) / n;
  state.counters["migratory_per_round"] = static_cast<double>(c.node(0).stats().migratory_grants.load()) / n;
  state.counters["reads_per_round"] = static_cast<double>(reads) / n;
  state.counters["upgrades_per_round"] = static_cast<double>(upgrades) / n;
  state.counters["hot_holds_per_round"] = static_cast<double>(hot_holds) / n;
  state.counters["hold_us_per_round"] = static_cast<double>(hold_ns) / 1000.0 / n;
  state.counters["clean_handovers"] = static_cast<double>(clean);
}

// One counter page bounced between two nodes: each iteration is one round
// trip (node 0 increments on even, node 1 on odd).
void BM_PingPong(benchmark::State& state, std::string transport) {
  auto c = setup(state, transport, 2, 1, all_on(1, 0), hot_mode(state));
  if (!c) return;
  Floor floor = measure_floor(*c);
  std::atomic<bool> stop{false};
  std::thread partner([&] {
    testing::pin_this_thread(cpu_of_node(1));
    auto v = std::atomic_ref<std::uint64_t>(word_at(c->node(1), 0));
    while (!stop.load()) {
      if (v.load() % 2 == 1) v.fetch_add(1);
      else std::this_thread::yield();
    }
  });
  auto v = std::atomic_ref<std::uint64_t>(word_at(c->node(0), 0));
  Samples s;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto until = t0 + std::chrono::seconds(10);
    while (v.load() % 2 == 1 && Clock::now() < until) std::this_thread::yield();
    v.fetch_add(1);
    s.add(us_since(t0));
  }
  stop = true;
  v.fetch_add(1);  // make it odd so a partner in its loop moves on
  partner.join();
  // One round: without migratory pages each node reads (a miss), then
  // writes (an upgrade); each is a 2-delay transaction with the home (node
  // 0) and the page's holder downgrades or drops. A home that grants a
  // migrating page writable on the read miss halves that: 2 transactions,
  // 2 faults, the minimum.
  const bool migratory = state.range(0) >= 1;
  report(state, s, floor,
         FaultModel{{4, 2, 0, 2}, migratory ? FaultModel::Path{4, 2, 0, 2} : FaultModel::Path{8, 4, 2, 2}});
  report_hot(state, *c, s.us.size());
}

// False sharing: two nodes each increment their own word of one page (a
// load, then a store), as fast as they can, for the benchmark's time. The
// page moves once per handover; what a handover costs, and how many
// increments a node gets done per handover, is the measure.
void BM_FalseSharing(benchmark::State& state, std::string transport) {
  auto c = setup(state, transport, 2, 1, all_on(1, 0), hot_mode(state));
  if (!c) return;
  Floor floor = measure_floor(*c);
  std::atomic<bool> stop{false};
  std::uint64_t partner_ops = 0;
  std::thread partner([&] {
    testing::pin_this_thread(cpu_of_node(1));
    auto w = std::atomic_ref<std::uint64_t>(word_at(c->node(1), 0, 64));
    while (!stop.load(std::memory_order_relaxed)) {
      w.store(w.load() + 1);
      ++partner_ops;
    }
  });
  auto w = std::atomic_ref<std::uint64_t>(word_at(c->node(0), 0, 0));
  const std::uint64_t before = c->node(0).stats().page_migrations.load();
  std::uint64_t ops = 0;
  auto t0 = Clock::now();
  for (auto _ : state) {
    w.store(w.load() + 1);
    ++ops;
  }
  const double us = us_since(t0);
  stop = true;
  partner.join();
  const std::uint64_t handovers = c->node(0).stats().page_migrations.load() - before;
  const auto mine = std::atomic_ref<std::uint64_t>(word_at(c->node(0), 0, 0)).load();
  const auto theirs = std::atomic_ref<std::uint64_t>(word_at(c->node(0), 0, 64)).load();
  state.counters["ops_node0"] = static_cast<double>(ops);
  state.counters["ops_node1"] = static_cast<double>(partner_ops);
  state.counters["lost_updates"] = static_cast<double>((ops - mine) + (partner_ops - theirs));
  state.counters["handovers"] = static_cast<double>(handovers);
  const double per = handovers > 0 ? us / static_cast<double>(handovers) : 0;
  state.counters["us_per_handover"] = per;
  state.counters["floor_us"] = floor.total();
  state.counters["ratio"] = floor.total() > 0 ? per / floor.total() : 0;
  state.counters["ops_per_handover"] =
      handovers > 0 ? static_cast<double>(ops + partner_ops) / static_cast<double>(handovers) : 0;
  state.counters["ops_per_s"] = us > 0 ? static_cast<double>(ops + partner_ops) / us * 1e6 : 0;
  report_hot(state, *c, handovers);
}

// Every node first-touches (writes) its own pages, homed on itself
// (home:0, no message: the scaling a placement by home gets) or on the
// next node (home:1, one round trip each): aggregate fault throughput for
// 1, 2, 4 nodes; speedup = throughput / the 1-node throughput of the run.
void BM_PrivatePageScaling(benchmark::State& state, std::string transport) {
  const auto nodes = static_cast<std::uint32_t>(state.range(0));
  const auto shift = static_cast<std::uint32_t>(state.range(1));  // 0: own home, 1: the next node
  constexpr std::uint64_t kPerIter = 128, kIters = 8;
  const std::uint64_t chunk = kPerIter * kIters;
  auto c = setup(state, transport, nodes, chunk * nodes);
  if (!c) return;
  std::uint64_t iter = 0;
  auto t0 = Clock::now();
  for (auto _ : state) {
    std::vector<std::thread> ts;
    for (std::uint32_t n = 0; n < nodes; ++n)
      ts.emplace_back([&, n] {
        testing::pin_this_thread(cpu_of_node(n));
        std::uint64_t first = ((n + shift) % nodes) * chunk + (iter % kIters) * kPerIter;
        for (std::uint64_t p = first; p < first + kPerIter; ++p) write_word(c->node(n), p, n);
      });
    for (auto& t : ts) t.join();
    ++iter;
  }
  const double us = us_since(t0);
  state.SetItemsProcessed(static_cast<std::int64_t>(iter * kPerIter * nodes));
  state.counters["nodes"] = nodes;
  const double rate = us > 0 ? static_cast<double>(iter * kPerIter * nodes) / us * 1e6 : 0;
  state.counters["pages_per_s"] = rate;
  // The 1-node run of the same transport and home comes first (ArgsProduct).
  static std::map<std::string, double> one_node;
  const std::string key = transport + "/" + std::to_string(shift);
  if (nodes == 1) one_node[key] = rate;
  if (auto it = one_node.find(key); it != one_node.end() && it->second > 0)
    state.counters["speedup"] = rate / it->second;
}

std::vector<std::string> transports() {
  const char* env = std::getenv("SSI_BENCH_TRANSPORTS");
  std::stringstream ss(env ? env : "loopback,tcp,shm");
  std::vector<std::string> out;
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

void add_context() {
  utsname u{};
  uname(&u);
  benchmark::AddCustomContext("host", std::string(u.nodename) + " " + u.release);
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      benchmark::AddCustomContext("cpu_model", line.substr(line.find(':') + 2));
      break;
    }
  std::string cpus;
  for (int c : bench_cpus()) cpus += (cpus.empty() ? "" : ",") + std::to_string(c);
  benchmark::AddCustomContext(
      "cpu_placement", "node i reactor + host thread pinned to cpus[i % n], cpus=" + cpus);
  benchmark::AddCustomContext("online_cpus", std::to_string(std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace ssi::dsm::bench

int main(int argc, char** argv) {
  using namespace ssi::dsm::bench;
  for (const auto& t : transports()) {
    benchmark::RegisterBenchmark(("BM_RemoteReadFault/" + t).c_str(), BM_RemoteReadFault, t)
        ->ArgName("source")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_WriteFault/" + t).c_str(), BM_WriteFault, t)
        ->ArgName("sharers")->Arg(0)->Arg(1)->Arg(3)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_ZeroFillFirstTouch/" + t).c_str(), BM_ZeroFillFirstTouch, t)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("BM_PingPong/" + t).c_str(), BM_PingPong, t)
        ->ArgName("hot")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_FalseSharing/" + t).c_str(), BM_FalseSharing, t)
        ->ArgName("hot")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_PrivatePageScaling/" + t).c_str(), BM_PrivatePageScaling, t)
        ->ArgNames({"nodes", "home"})->ArgsProduct({{1, 2, 4}, {0, 1}})->Iterations(8)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  add_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
