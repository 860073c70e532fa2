// N DSM nodes in one process, one reactor thread per node (as in a real node
// process), over any transport backend (loopback with fault injection by
// default; tcp/shm on 127.0.0.1 for benchmarks). Host threads of the caller
// then read and write node(i).base() directly.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <pthread.h>
#include <sched.h>
#include <memory>
#include <thread>
#include <vector>

#include "dsm/node.hpp"
#include "rdma/factory.hpp"
#include "rdma/loopback.hpp"
#include "rdma/reactor.hpp"

namespace ssi::dsm::testing {

// Benchmark/test frame type (0xf000 range): answered by every node with a
// 4 KiB payload, the transport's page round trip without the DSM.
inline constexpr rdma::FrameType kEchoPage = 0xf0d5;

struct LocalClusterOptions {
  std::uint32_t nodes = 3;
  std::uint64_t bytes = 64 * kPageSize;
  std::uint64_t seed = 1;
  rdma::LoopbackFaults faults;             // loopback only
  std::string transport = "loopback";      // or "tcp", "shm"
  rdma::ReactorOptions reactor;            // e.g. spin before sleeping
  std::vector<int> reactor_cpus;           // pin reactor i to reactor_cpus[i % size]
  std::vector<HomeMap::Range> homes;  // empty: equal chunks
  std::function<void(NodeConfig&)> configure;  // adjusts every node's config
};

inline void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

class LocalCluster {
 public:
  static Result<std::unique_ptr<LocalCluster>> create(const LocalClusterOptions& o) {
    auto c = std::unique_ptr<LocalCluster>(new LocalCluster(o));
    SSI_TRY(c->start(o));
    return c;
  }

  ~LocalCluster() {
    for (std::size_t i = 0; i < members_.size(); ++i) {
      auto& m = members_[i];
      if (!m.thread.joinable()) continue;
      (void)run_on(i, [&m] {
        if (m.node) m.node->stop();
        if (m.transport) m.transport->shutdown();
      });
      m.reactor->stop();
      m.thread.join();
    }
  }

  std::size_t size() const { return members_.size(); }
  Node& node(std::size_t i) { return *members_[i].node; }
  rdma::Transport& transport(std::size_t i) { return *members_[i].transport; }
  rdma::Reactor& reactor(std::size_t i) { return *members_[i].reactor; }
  rdma::LoopbackNetwork& network() { return network_; }

  // Runs `fn` in a fiber on node i's reactor thread and waits for it.
  Result<void> run_on(std::size_t i, std::function<void()> fn,
                      std::chrono::seconds timeout = std::chrono::seconds(10)) {
    auto done = std::make_shared<std::promise<void>>();
    auto fut = done->get_future();
    members_[i].reactor->post([fn = std::move(fn), done] {
      fn();
      done->set_value();
    });
    if (fut.wait_for(timeout) != std::future_status::ready)
      return make_error(Errc::kTimeout, "reactor task did not finish");
    return ok();
  }

 private:
  struct Member {
    std::unique_ptr<rdma::Reactor> reactor;
    std::unique_ptr<rdma::Transport> transport;
    std::unique_ptr<Node> node;
    std::thread thread;
  };

  explicit LocalCluster(const LocalClusterOptions& o) : network_(o.seed, o.faults) {}

  Result<void> start(const LocalClusterOptions& o) {
    members_.resize(o.nodes);
    for (std::uint32_t i = 0; i < o.nodes; ++i) {
      SSI_ASSIGN_OR_RETURN(members_[i].reactor, rdma::Reactor::create(o.reactor));
      auto* r = members_[i].reactor.get();
      int cpu = o.reactor_cpus.empty() ? -1 : o.reactor_cpus[i % o.reactor_cpus.size()];
      members_[i].thread = std::thread([r, cpu] {
        if (cpu >= 0) pin_this_thread(cpu);
        r->run();
      });
    }
    Result<void> status;
    for (std::uint32_t i = 0; i < o.nodes; ++i) {
      SSI_TRY(run_on(i, [&, i] {
        rdma::TransportConfig tc;
        tc.kind = o.transport;
        tc.self = NodeId{i};
        tc.loopback = &network_;
        if (o.transport == "tcp") tc.listen = "tcp:127.0.0.1:0";
        auto t = rdma::make_transport(tc, *members_[i].reactor);
        if (!t.ok()) status = std::move(t).error();
        else members_[i].transport = std::move(*t);
      }));
      SSI_TRY(status);
    }
    for (std::uint32_t i = 0; i < o.nodes; ++i) {
      SSI_TRY(run_on(i, [&, i] {
        for (std::uint32_t j = 0; j < o.nodes && status.ok(); ++j)
          if (j != i) status = members_[i].transport->connect(NodeId{j}, members_[j].transport->local_address());
        if (!status.ok()) return;
        NodeConfig cfg;
        cfg.self = NodeId{i};
        cfg.nodes = o.nodes;
        cfg.bytes = o.bytes;
        cfg.homes = o.homes;
        if (o.configure) o.configure(cfg);
        auto n = Node::create(cfg, *members_[i].reactor, *members_[i].transport);
        if (!n.ok()) {
          status = std::move(n).error();
          return;
        }
        members_[i].node = std::move(*n);
        status = members_[i].node->start();
        auto* m = &members_[i];
        m->transport->on_receive([m](rdma::Frame&& f) {
          if (f.header.type != kEchoPage) return;
          static const std::vector<std::byte> page(kPageSize);
          rdma::Frame r = rdma::Frame::make(kEchoPage);
          r.payload = rdma::Payload::borrow(page);
          (void)m->transport->reply(f.header, std::move(r));
        });
      }));
      SSI_TRY(status);
    }
    return ok();
  }

  rdma::LoopbackNetwork network_;
  std::vector<Member> members_;
};

// A bounded wait for host threads: a thread blocked in a page fault cannot be
// cancelled, so a hang prints `context` (the seed) and exits the process.
class HangWatchdog {
 public:
  HangWatchdog(std::chrono::seconds limit, std::string context)
      : thread_([this, limit, context] {
          std::unique_lock lock(m_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "HANG after %lld s (%s)\n", static_cast<long long>(limit.count()),
                         context.c_str());
            std::fflush(stderr);
            std::_Exit(2);
          }
        }) {}
  ~HangWatchdog() {
    {
      std::lock_guard lock(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace ssi::dsm::testing
