// Loopback backend: N nodes in one process (on one Reactor or several),
// with seeded, deterministic fault injection. Fault decisions (drop,
// duplicate, delay, reorder) come from one RNG in send order, so a run with
// the same seed and the same send order makes the same decisions.
//
// Without faults a frame is delivered in the sender's fiber when both nodes
// share a reactor (no queue, no copy of owned payloads). With a delay, frames
// of one (src, dst) pair wait in a per-pair queue and keep their order,
// unless reorder_within_pair is set; different pairs reorder freely.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <unordered_map>

#include "rdma/transport_base.hpp"

namespace ssi::rdma {

struct LoopbackFaults {
  double drop = 0;       // probability a frame is lost
  double duplicate = 0;  // probability a frame arrives twice
  std::chrono::microseconds min_delay{0};  // uniform delay in [min, max]
  std::chrono::microseconds max_delay{0};
  double reorder_within_pair = 0;  // probability a frame overtakes the previous one of its pair
};

struct LoopbackStats {
  std::uint64_t sent = 0, delivered = 0, dropped = 0, duplicated = 0, reordered = 0;
};

class LoopbackTransport;
struct LoopbackInbox;

class LoopbackNetwork {
 public:
  explicit LoopbackNetwork(std::uint64_t seed, LoopbackFaults faults = {});
  ~LoopbackNetwork();
  LoopbackNetwork(const LoopbackNetwork&) = delete;
  LoopbackNetwork& operator=(const LoopbackNetwork&) = delete;

  std::uint64_t seed() const { return seed_; }
  void set_faults(LoopbackFaults faults);

  // A node reachable at "loop:<id>", running its fibers on `reactor`.
  Result<std::unique_ptr<LoopbackTransport>> create(NodeId id, Reactor& reactor);

  // Frames between a and b (both directions) are silently lost until heal().
  void partition(NodeId a, NodeId b);
  void heal(NodeId a, NodeId b);
  // The node crashes: its rpcs fail, every other node sees it go down.
  void kill(NodeId node);
  // Feeds raw wire bytes to `to` as if sent by `from` over a byte stream
  // (through StreamDecoder): bad input makes `to` drop `from` (peer down).
  // Call on the reactor thread of `to`.
  void inject_bytes(NodeId from, NodeId to, std::span<const std::byte> bytes);
  // Ends that byte stream: `to` sees `from` go down (kDisconnected).
  void close_stream(NodeId from, NodeId to);

  LoopbackStats stats() const;

 private:
  friend class LoopbackTransport;
  struct Decision {
    bool drop = false;
    int copies = 1;
    std::chrono::microseconds delay{0};
    bool reorder = false;
  };
  Result<void> route(NodeId from, NodeId to, Frame&& frame);
  void node_gone(NodeId node, const Error& why);  // tells every other node
  void unregister(NodeId node);
  Decision decide();  // with mutex_ held

  const std::uint64_t seed_;
  mutable std::mutex mutex_;
  LoopbackFaults faults_;
  std::mt19937_64 rng_;
  std::unordered_map<NodeId, std::shared_ptr<LoopbackInbox>> nodes_;
  std::set<std::pair<NodeId, NodeId>> partitions_;
  std::set<NodeId> dead_;
  LoopbackStats stats_;
};

class LoopbackTransport final : public TransportBase {
 public:
  LoopbackTransport(NodeId self, Reactor& reactor, LoopbackNetwork& network);
  ~LoopbackTransport() override;

  std::string_view kind() const override { return "loopback"; }
  Address local_address() const override;
  Result<void> connect(NodeId peer, const Address& address) override;

 protected:
  Result<void> send_frame(NodeId peer, Frame&& frame) override;
  void close_all() override;

 private:
  friend class LoopbackNetwork;
  friend struct LoopbackInbox;
  LoopbackNetwork& network_;
  std::shared_ptr<LoopbackInbox> inbox_;
};

}  // namespace ssi::rdma
