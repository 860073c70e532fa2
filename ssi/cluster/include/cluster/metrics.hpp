// Live metrics of a running machine (docs/operations.md). The coordinator
// samples every node's counters periodically (Node.sample, 500 ms) and the
// launcher publishes the latest here; one endpoint answers two protocols:
//   - QMP-like JSON: send `{"execute":"query-stats"}` (one line), get
//     `{"return":{...}}` back; what `ssi stats` uses;
//   - Prometheus text: an HTTP `GET /metrics`.
// The endpoint is a Unix socket (ADDR contains a '/') or TCP HOST:PORT.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

class MoveQueue;  // move_queue.hpp
class CheckpointOrders;  // checkpoint_orders.hpp
class RetireOrders;      // retire_orders.hpp

// Everything the endpoint serves: the latest counters of every node.
struct MetricsSnapshot {
  std::vector<coord::NodeReport> nodes;
  std::uint64_t samples = 0;   // how many node answers arrived so far
  std::uint64_t uptime_ms = 0; // since the endpoint opened
};

std::string prometheus_text(const MetricsSnapshot& snapshot);
std::string query_stats_json(const MetricsSnapshot& snapshot);
// The inverse of query_stats_json's "return" object (for `ssi stats`).
Result<MetricsSnapshot> parse_query_stats(const std::string& reply);
// One row per vCPU: run time, exits (and by reason), halts, interrupts.
std::string per_vcpu_table(const MetricsSnapshot& snapshot);

class MetricsServer {
 public:
  // Listens on `address` (a Unix socket path, replaced if it exists, or
  // HOST:PORT; port 0 = any) and serves from a thread of its own.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void publish(const std::vector<coord::NodeReport>& nodes);
  // Serve `move-vcpu` requests through `queue` (outliving the server).
  void serve_moves(MoveQueue* queue) { moves_.store(queue); }
  // Serve `checkpoint` requests through `orders` (outliving the server).
  void serve_checkpoints(CheckpointOrders* orders) { checkpoints_.store(orders); }
  // Serve `retire-node` requests through `orders` (outliving the server).
  void serve_retires(RetireOrders* orders) { retires_.store(orders); }
  // Where clients connect: the socket path, or HOST:PORT with the real port.
  const std::string& address() const { return address_; }

 private:
  MetricsServer(int fd, std::string address, std::string unix_path);
  void serve();
  void answer(int client);
  MetricsSnapshot snapshot() const;

  int fd_;
  int wake_[2] = {-1, -1};  // a pipe: the destructor ends serve()
  std::string address_, unix_path_;
  std::uint64_t opened_ns_;
  mutable std::mutex mu_;
  MetricsSnapshot latest_;
  std::atomic<MoveQueue*> moves_{nullptr};
  std::atomic<CheckpointOrders*> checkpoints_{nullptr};
  std::atomic<RetireOrders*> retires_{nullptr};
  std::thread thread_;
};

// `ssi stats ADDR [--json]`: one query; prints the per-node table and the
// per-vCPU table (or the JSON reply) on stdout. Exit 0, or 2 with one line.
int run_stats_command(const std::string& address, bool json);

// One request line to the endpoint at `address`; the whole reply (the
// server closes after it), within `timeout`.
Result<std::string> metrics_request(const std::string& address, const std::string& request,
                                    std::chrono::milliseconds timeout);

}  // namespace ssi::cluster
