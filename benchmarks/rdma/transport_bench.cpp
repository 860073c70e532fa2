// Transport benchmarks: rpc round trip (64 B and 4 KiB payloads) and
// one-way 4 KiB throughput per backend, each with the raw floor of the same
// kind measured in the same run and placement, and ratio = ours / floor.
// Client and server are separate processes (loopback: one process), pinned
// per placement (see bench_env.hpp); JSON: --benchmark_format=json.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "bench_env.hpp"
#include "floors.hpp"
#include "rdma/factory.hpp"
#include "rdma/loopback.hpp"
#include "rdma/shm_transport.hpp"

namespace ssi::bench {
namespace {

using rdma::Frame;
using rdma::Payload;
using rdma::Reactor;
using rdma::Transport;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr rdma::FrameType kEcho = 0xf020;    // answered with the same payload
constexpr rdma::FrameType kOneWay = 0xf021;  // counted
constexpr rdma::FrameType kSync = 0xf022;    // answered with arg0 = frames counted
constexpr int kBatch = 256;                  // one-way frames per throughput iteration
const NodeId kClient{0}, kServer{1};

std::optional<FloorKind> floor_for(const std::string& kind) {
  if (kind == "tcp") return FloorKind::kTcp;
  if (kind == "shm") return FloorKind::kShm;
  return std::nullopt;
}

// One benchmark node. shm gets the placement's spin (the factory's default
// is 0: sleep at once), everything else comes from make_transport().
Result<std::unique_ptr<Transport>> make_node(const std::string& kind, NodeId self,
                                                  const Placement& where, Reactor& reactor,
                                                  rdma::LoopbackNetwork* net) {
  if (kind == "shm") {
    rdma::ShmOptions options;
    options.spin = where.spin;
    SSI_ASSIGN_OR_RETURN(auto t, rdma::ShmTransport::create(self, reactor, options));
    return std::unique_ptr<Transport>(std::move(t));
  }
  std::string listen = kind == "tcp" ? "tcp:127.0.0.1:0" : "";
  return rdma::make_transport({kind, self, listen, net}, reactor);
}

// The benchmark's peer: echoes, counts and syncs.
void serve(Transport& t, std::uint64_t& counted) {
  t.on_receive([&t, &counted](Frame&& f) {
    if (f.header.type == kOneWay) {
      ++counted;
    } else if (f.header.type == kSync) {
      (void)t.reply(f.header, Frame::make(kSync, counted));
    } else if (f.header.type == kEcho) {
      Frame r = Frame::make(kEcho);
      r.payload = std::move(f.payload);
      (void)t.reply(f.header, std::move(r));
    }
  });
}

// Runs a node process serving `kind` on `where.server_cpu`.
std::unique_ptr<ForkedServer> start_server(const std::string& kind, const Placement& where) {
  return std::make_unique<ForkedServer>(where.server_cpu, [&](int report) {
    auto reactor = Reactor::create(rdma::ReactorOptions{where.spin});
    if (!reactor.ok()) return;
    std::unique_ptr<Transport> t;
    std::uint64_t counted = 0;
    (*reactor)->run([&] {
      auto made = make_node(kind, kServer, where, **reactor, nullptr);
      if (!made.ok()) {
        report_line(report, "error " + made.error().to_string());
        (*reactor)->stop();
        return;
      }
      t = std::move(*made);
      serve(*t, counted);
      report_line(report, t->local_address());
    });  // until SIGKILLed
  });
}

// A benchmark that cannot run is skipped with the reason. A missing backend
// or device (kUnsupported) is expected; anything else also fails the exit
// status, so the ctest smoke run catches a broken benchmark.
int g_unexpected_errors = 0;
void skip(benchmark::State& st, const std::string& why, bool expected) {
  if (!expected) ++g_unexpected_errors;
  st.SkipWithError(why.c_str());
}

// Builds the client side (and, for loopback, the in-process server) on a
// reactor on this thread and runs `body` in a fiber; errors skip the benchmark.
void with_client(benchmark::State& st, const std::string& kind, const Placement& where,
                 const std::function<void(Transport&)>& body) {
  pin_to_cpu(where.client_cpu);
  auto reactor = Reactor::create(rdma::ReactorOptions{where.spin});
  if (!reactor.ok()) return skip(st, reactor.error().to_string(), false);
  std::unique_ptr<ForkedServer> server;
  std::unique_ptr<rdma::LoopbackNetwork> net;
  if (kind == "loopback") {
    net = std::make_unique<rdma::LoopbackNetwork>(1);
  } else {
    server = start_server(kind, where);
    if (!server->ok() || server->line().rfind("error", 0) == 0) {
      std::string why = server->line().empty() ? "server did not start" : server->line();
      return skip(st, why, why.rfind("error unsupported", 0) == 0);
    }
  }
  std::unique_ptr<Transport> client, local_server;
  std::uint64_t counted = 0;
  std::optional<Error> error;
  (*reactor)->run([&] {
    auto made = make_node(kind, kClient, where, **reactor, net.get());
    if (!made.ok()) {
      error = made.error();
    } else {
      client = std::move(*made);
      std::string address = server ? server->line() : "";
      if (net) {
        auto s = make_node(kind, kServer, where, **reactor, net.get());
        local_server = std::move(*s);
        serve(*local_server, counted);
        address = local_server->local_address();
      }
      if (auto c = client->connect(kServer, address); !c.ok()) {
        error = c.error();
      } else {
        body(*client);
      }
      client->shutdown();
      if (local_server) local_server->shutdown();
    }
    (*reactor)->stop();
  });
  if (error) skip(st, error->message, error->code == Errc::kUnsupported);
}

// ratio = our time / the floor's time (> 1: slower than the floor).
void set_ratio(benchmark::State& st, double ours_time, double floor_time, FloorKind fk,
               const Placement& where) {
  st.counters["ratio"] = floor_time > 0 ? ours_time / floor_time : 0;
  st.SetLabel(std::string(where.name) + ", floor: " + floor_name(fk));
}

void BM_RpcRoundTrip(benchmark::State& st, std::string kind, std::size_t bytes, Placement where) {
  std::vector<std::byte> page(bytes, std::byte{0x42});
  std::vector<double> ns;
  with_client(st, kind, where, [&](Transport& t) {
    auto once = [&]() -> bool {
      Frame req = Frame::make(kEcho);
      req.payload = Payload::borrow(page);
      auto r = t.rpc(kServer, std::move(req), 5s);
      if (!r.ok() || r->payload.size() != bytes) {
        skip(st, r.ok() ? "echo lost bytes" : r.error().to_string(), false);
        return false;
      }
      return true;
    };
    for (int i = 0; i < 100; ++i)
      if (!once()) return;
    ns.reserve(st.max_iterations);
    for (auto _ : st) {
      auto t0 = Clock::now();
      if (!once()) break;
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
  });
  if (ns.empty()) return;
  auto ours = summarize(ns);
  st.counters["rtt_median_us"] = ours.median_us;
  st.counters["rtt_p99_us"] = ours.p99_us;
  st.SetBytesProcessed(static_cast<std::int64_t>(2 * bytes * ns.size()));
  auto fk = floor_for(kind);
  if (!fk) return st.SetLabel(std::string(where.name) + ", in-process: no floor");
  int n = std::clamp(static_cast<int>(ns.size()), 200, 20000);
  auto floor_ns = floor_round_trips(*fk, bytes, where, n);
  if (floor_ns.empty()) return skip(st, std::string("floor failed: ") + floor_name(*fk), false);
  auto floor = summarize(std::move(floor_ns));
  st.counters["floor_median_us"] = floor.median_us;
  st.counters["floor_p99_us"] = floor.p99_us;
  set_ratio(st, ours.median_us, floor.median_us, *fk, where);
}

void BM_Throughput4K(benchmark::State& st, std::string kind, Placement where) {
  std::vector<std::byte> page(rdma::kMaxPayload, std::byte{0x17});
  std::int64_t frames = 0;
  double seconds = 0;
  with_client(st, kind, where, [&](Transport& t) {
    std::uint64_t sent = 0;
    auto t0 = Clock::now();
    for (auto _ : st) {
      for (int i = 0; i < kBatch; ++i, ++sent) {
        Frame f = Frame::make(kOneWay);
        f.payload = Payload::borrow(page);
        if (auto r = t.send(kServer, std::move(f)); !r.ok())
          return skip(st, r.error().to_string(), false);
      }
      // Every batch ends with an rpc, so the time covers delivery, not queueing.
      auto sync = t.rpc(kServer, Frame::make(kSync), 10s);
      if (!sync.ok() || sync->header.arg0 != sent)
        return skip(st, sync.ok() ? "frames lost" : sync.error().to_string(), false);
    }
    seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    frames = static_cast<std::int64_t>(sent);
  });
  if (frames == 0) return;
  st.SetItemsProcessed(frames);
  st.SetBytesProcessed(frames * static_cast<std::int64_t>(rdma::kMaxPayload));
  double ours_rate = frames / seconds;
  st.counters["frames_per_s"] = ours_rate;
  st.counters["MB_per_s"] = ours_rate * rdma::kMaxPayload / 1e6;
  auto fk = floor_for(kind);
  if (!fk) return st.SetLabel(std::string(where.name) + ", in-process: no floor");
  int count = static_cast<int>(std::clamp<std::int64_t>(frames, 4096, 65536));
  double floor_s = floor_stream(*fk, rdma::kMaxPayload, where, count);
  if (floor_s <= 0) return skip(st, std::string("floor failed: ") + floor_name(*fk), false);
  double floor_rate = count / floor_s;
  st.counters["floor_frames_per_s"] = floor_rate;
  // As a time ratio (ours / floor per frame), like the round-trip ratio.
  set_ratio(st, floor_rate, ours_rate, *fk, where);
}

void register_all() {
  std::vector<Placement> placements{kSameCpu};
  if (online_cpus() >= 2) placements.push_back(kSplitCpu);
  for (std::string kind : {"loopback", "tcp", "shm", "verbs"}) {
    for (const Placement& p : placements) {
      if (kind == "loopback" && p.client_cpu != p.server_cpu) continue;  // one process
      for (std::size_t bytes : {std::size_t{64}, std::size_t{4096}}) {
        benchmark::RegisterBenchmark(
            ("rpc/" + kind + "/" + std::to_string(bytes) + "B/" + p.name).c_str(),
            BM_RpcRoundTrip, kind, bytes, p)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
      benchmark::RegisterBenchmark(("throughput4K/" + kind + "/" + p.name).c_str(),
                                   BM_Throughput4K, kind, p)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace ssi::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ssi::bench::add_machine_context();
  ssi::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return ssi::bench::g_unexpected_errors == 0 ? 0 : 1;
}
