// The coordinator: waits for N nodes to join, broadcasts the machine
// config, runs the phase barriers, watches heartbeats, stops everything on
// failure, and collects per-node stats.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/secret.hpp"
#include "coordinator/types.hpp"

namespace ssi::coord {

struct NodeReport;

// One vCPU move (docs/mobility.md) and what it took, as the coordinator saw
// it: `pause_us` from ordering the pause to the new node's answer that the
// vCPU runs there (an upper bound of the time it ran nowhere).
struct MoveResult {
  std::uint32_t vcpu = 0, from = 0, to = 0;
  std::uint64_t pause_us = 0, total_us = 0, state_bytes = 0;
};
struct MoveOrder {
  std::uint32_t vcpu = 0;
  std::uint32_t to = 0;
  std::function<void(Result<MoveResult>)> done;  // called on the coordinator's thread
};

// A whole-machine checkpoint (docs/checkpoint.md): every vCPU of every node
// paused at a barrier, saved by node 0 into `dir`; then the machine resumes
// (`resume`) or stops with exit code 0. `summary` is node 0's JSON line,
// `pause_us` from the order to the last node parked.
struct CheckpointResult {
  std::string dir;
  std::string summary;
  std::uint64_t pause_us = 0, total_us = 0;
};
struct CheckpointOrder {
  std::string dir;
  bool resume = false;
  std::function<void(Result<CheckpointResult>)> done;  // called on the coordinator's thread
};

// Retiring node `from` (docs/mobility.md, "Retiring a node"): its vCPUs
// move to `to` (default: the first standby node still there), `to`
// pre-copies its pages while the guest runs, then at a barrier its share of
// the DSM goes to `to` and it leaves; the machine goes on.
struct RetireResult {
  std::uint32_t from = 0, to = 0, vcpus_moved = 0;
  std::uint64_t moves_us = 0, precopy_us = 0, pause_us = 0, total_us = 0;
  std::string precopy;   // the new node's JSON fields (pages, bytes)
  std::string handover;  // the retiring node's JSON fields (entries, bytes, ...)
};
struct RetireOrder {
  std::uint32_t from = 0;
  std::optional<std::uint32_t> to;
  bool precopy = true;
  std::function<void(Result<RetireResult>)> done;  // called on the coordinator's thread
};

struct CoordinatorOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 = any
  // Or an already listening socket (taken over): lets a launcher fork
  // nodes before the coordinator's event loop exists. See listen_socket().
  int listen_fd = -1;
  // Every connection must prove it (base/secret.hpp) before its first
  // Cap'n Proto message is read.
  MachineSecret secret;
  // ...within this long, or the connection is closed. Generous: a node on a
  // loaded or emulated host (the KVM test VM under load took over 3 s) must
  // not be turned away; at most 64 connections may be mid-handshake.
  std::chrono::milliseconds handshake_limit{10000};
  MachineConfig config;                // peers are filled in from the joins
  std::string version;                 // nodes with another version are refused
  Timing timing;
  std::function<void(std::uint16_t port)> on_listening;  // e.g. to spawn nodes
  std::function<void(const std::string& line)> on_event;  // progress lines
  const std::atomic<bool>* interrupted = nullptr;        // Ctrl-C: stop cleanly
  // Polled while waiting: a launcher reports here a node process that
  // exited early (e.g. before it could join), so nobody waits for it.
  std::function<std::optional<std::string>()> watchdog;
  // Live metrics: every sample_period while the machine runs, each node's
  // counters are fetched (Node.sample) and the latest of every node handed
  // here (NodeReport.last.stats = the counters; exit_code/message empty).
  std::function<void(const std::vector<NodeReport>&)> on_sample;
  std::chrono::milliseconds sample_period{500};
  // vCPU moves: polled (every few ms) while the guest runs (phases >= 1);
  // one move at a time.
  std::function<std::optional<MoveOrder>()> next_move;
  // Checkpoints: polled like next_move (never during a move, nor a move
  // during a checkpoint).
  std::function<std::optional<CheckpointOrder>()> next_checkpoint;
  // Node retirements: polled like next_checkpoint (never beside a move or a
  // checkpoint). on_retired(node): that node left the machine; its process
  // ends with exit code 0 and is not a failure.
  std::function<std::optional<RetireOrder>()> next_retire;
  std::function<void(std::uint32_t node)> on_retired;
};

struct NodeReport {
  NodeInfo info;
  PhaseResult last;  // result of the last phase the node finished
};

struct Outcome {
  int exit_code = 0;  // 0 = every phase succeeded on every node
  std::string message;
  bool guest_exit = false;  // exit_code is the guest's own: the machine ended normally
  std::vector<NodeReport> nodes;
};

// Runs on the calling thread (its own kj event loop) until the machine
// finished, failed or was interrupted. Errors only for setup problems
// (cannot listen); a failed machine is an Outcome with exit_code != 0.
Result<Outcome> run_coordinator(const CoordinatorOptions& options);

// A listening TCP socket on HOST:PORT (port 0 = any) and its port.
Result<std::pair<int, std::uint16_t>> listen_socket(const std::string& host, std::uint16_t port);

// Renders the per-node stats table printed at exit.
std::string format_stats_table(const std::vector<NodeReport>& nodes);

}  // namespace ssi::coord
