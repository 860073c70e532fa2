// N DSM nodes in one process over the loopback transport, one reactor thread
// per node (as in a real node process), for tests and benchmarks. Host
// threads of the caller then read and write node(i).base() directly.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "dsm/node.hpp"
#include "rdma/loopback.hpp"
#include "rdma/reactor.hpp"

namespace ssi::dsm::testing {

struct LocalClusterOptions {
  std::uint32_t nodes = 3;
  std::uint64_t bytes = 64 * kPageSize;
  std::uint64_t seed = 1;
  rdma::LoopbackFaults faults;
  std::vector<HomeMap::Range> homes;  // empty: equal chunks
};

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
  rdma::LoopbackTransport& transport(std::size_t i) { return *members_[i].transport; }
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
    std::unique_ptr<rdma::LoopbackTransport> transport;
    std::unique_ptr<Node> node;
    std::thread thread;
  };

  explicit LocalCluster(const LocalClusterOptions& o) : network_(o.seed, o.faults) {}

  Result<void> start(const LocalClusterOptions& o) {
    members_.resize(o.nodes);
    for (std::uint32_t i = 0; i < o.nodes; ++i) {
      SSI_ASSIGN_OR_RETURN(members_[i].reactor, rdma::Reactor::create());
      auto* r = members_[i].reactor.get();
      members_[i].thread = std::thread([r] { r->run(); });
    }
    Result<void> status;
    for (std::uint32_t i = 0; i < o.nodes; ++i) {
      SSI_TRY(run_on(i, [&, i] {
        auto t = network_.create(NodeId{i}, *members_[i].reactor);
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
        auto n = Node::create(cfg, *members_[i].reactor, *members_[i].transport);
        if (!n.ok()) {
          status = std::move(n).error();
          return;
        }
        members_[i].node = std::move(*n);
        status = members_[i].node->start();
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
