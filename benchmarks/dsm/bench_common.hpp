// Shared pieces of the DSM benchmarks: CPU placement, the floor measured in
// the same run (local uffd MISSING fault resolved by UFFDIO_COPY on the same
// reactor + the same backend's 4 KiB rpc round trip), and sample statistics.
#pragma once

#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dsm/local_cluster.hpp"

namespace ssi::dsm::bench {

using Clock = std::chrono::steady_clock;

inline double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

struct Samples {
  std::vector<double> us;
  void add(double v) { us.push_back(v); }
  double quantile(double q) {
    if (us.empty()) return 0;
    std::sort(us.begin(), us.end());
    return us[static_cast<std::size_t>(q * static_cast<double>(us.size() - 1))];
  }
  double median() { return quantile(0.5); }
};

// SSI_BENCH_CPUS="0" (default: every thread on CPU 0, no cross-core
// wake-ups, about 15-40 us on this machine kind, docs/benchmarking.md) or e.g. "0,1": node i's reactor and host
// thread on cpus[i % n].
inline std::vector<int> bench_cpus() {
  const char* env = std::getenv("SSI_BENCH_CPUS");
  std::string s = env ? env : "0";
  std::vector<int> cpus;
  for (std::size_t pos = 0; pos <= s.size();) {
    auto comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (comma > pos) cpus.push_back(std::atoi(s.substr(pos, comma - pos).c_str()));
    pos = comma + 1;
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

inline int cpu_of_node(std::size_t node) {
  auto cpus = bench_cpus();
  return cpus[node % cpus.size()];
}

// Runs `fn` on a host thread pinned like node `node`'s reactor.
template <typename F>
void on_host_of(std::size_t node, F&& fn) {
  std::thread t([&] {
    testing::pin_this_thread(cpu_of_node(node));
    fn();
  });
  t.join();
}

inline Result<std::unique_ptr<testing::LocalCluster>> make_bench_cluster(
    const std::string& transport, std::uint32_t nodes, std::uint64_t pages,
    std::vector<HomeMap::Range> homes = {}, std::function<void(NodeConfig&)> configure = {}) {
  testing::LocalClusterOptions o;
  o.configure = std::move(configure);
  o.transport = transport;
  o.nodes = nodes;
  o.bytes = pages * kPageSize;
  o.homes = std::move(homes);
  o.reactor_cpus = bench_cpus();
  // SSI_BENCH_LOOPBACK_DELAY_US=N: every loopback frame takes N us (a wire
  // whose latency dominates, where message delays are what a fault costs).
  if (const char* d = std::getenv("SSI_BENCH_LOOPBACK_DELAY_US"); d && transport == "loopback") {
    o.faults.min_delay = o.faults.max_delay = std::chrono::microseconds(std::strtoll(d, nullptr, 10));
  }
  return testing::LocalCluster::create(o);
}

struct Floor {
  double uffd_us = 0;  // median local MISSING fault resolved by UFFDIO_COPY
  double rpc_us = 0;   // median 64 B -> 4 KiB rpc round trip, node 0 -> 1
  // Not part of the floor, but what a downgrade / invalidation adds on top
  // of it on this kernel: one UFFDIO_WRITEPROTECT / MADV_DONTNEED of a
  // populated page (each needs a TLB flush).
  double wp_us = 0, drop_us = 0;
  double total() const { return uffd_us + rpc_us; }
};

// The message-delay model of one fault kind: the one-way message delays on
// its critical path and the faults it takes, at least (`min`: what a
// home-based invalidation protocol needs: invalidation acks go straight to
// the requester, a page that migrates is granted writable on its read miss)
// and in ssi's protocol today (`ssi`). One one-way delay is half the
// measured 4 KiB rpc round trip, so model = faults * uffd + delays * rpc / 2
// + the write-protects and drops of holders' copies on the path.
// docs/benchmarking.md, "Fault model".
struct FaultModel {
  struct Path {
    int delays;
    int faults = 1;
    int downgrades = 0;  // a holder write-protects its copy on the path
    int drops = 0;       // a holder drops its copy on the path
  };
  Path min, ssi;
  double us(const Floor& f, const Path& p) const {
    return p.faults * f.uffd_us + p.delays * f.rpc_us / 2 + p.downgrades * f.wp_us +
           p.drops * f.drop_us;
  }
};

// Measured on the cluster's own reactor threads, from a host thread placed
// like node 0's (the caller must be that thread).
inline Floor measure_floor(testing::LocalCluster& c, int samples = 300) {
  Floor f;
  auto region = Region::create(static_cast<std::size_t>(samples) * kPageSize);
  if (!region.ok()) return f;
  Region& r = *region;
  static const std::array<std::byte, kPageSize> src{};
  (void)c.run_on(0, [&] {
    (void)c.reactor(0).watch(r.uffd(), EPOLLIN, [&r](std::uint32_t) {
      std::array<FaultEvent, 16> ev;
      for (;;) {
        auto n = r.read_events(ev);
        if (!n.ok() || *n == 0) return;
        for (std::size_t i = 0; i < *n; ++i) (void)r.install_copy(ev[i].page, src, false);
      }
    });
  });
  Samples uffd;
  for (int i = 0; i < samples; ++i) {
    auto t0 = Clock::now();
    *reinterpret_cast<volatile std::uint8_t*>(r.page_ptr(PageNo{static_cast<std::uint64_t>(i)})) = 1;
    uffd.add(us_since(t0));
  }
  (void)c.run_on(0, [&] { c.reactor(0).unwatch(r.uffd()); });
  f.uffd_us = uffd.median();
  Samples wp, drop;
  for (int i = 0; i < samples; ++i) {
    PageNo p{static_cast<std::uint64_t>(i)};
    auto t0 = Clock::now();
    (void)r.write_protect(p, true);
    wp.add(us_since(t0));
    t0 = Clock::now();
    (void)r.drop(p);
    drop.add(us_since(t0));
  }
  f.wp_us = wp.median();
  f.drop_us = drop.median();
  Samples rpc;
  (void)c.run_on(0, [&] {
    for (int i = 0; i < samples; ++i) {
      auto t0 = Clock::now();
      auto reply = c.transport(0).rpc(NodeId{1}, rdma::Frame::make(testing::kEchoPage),
                                      std::chrono::seconds(5));
      if (!reply.ok() || reply->payload.size() != kPageSize) return;
      rpc.add(us_since(t0));
    }
  });
  f.rpc_us = rpc.median();
  return f;
}

}  // namespace ssi::dsm::bench
