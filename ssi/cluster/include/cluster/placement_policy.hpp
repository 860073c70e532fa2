// `--placement auto` (docs/mobility.md): from the coordinator's live samples,
// each vCPU's DSM requests by home node ("vcpu<K>.dsm_requests_home<N>",
// summed over the nodes that counted them) since the last decision; a vCPU
// is moved to node N when, in one window of at least kMinRequests, N served
// at least kShare of its requests and at least kRatio times what its own
// node served, and it has not moved for kCooldown (hysteresis: a vCPU
// sharing pages evenly with two nodes stays put). One move at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "cluster/move_queue.hpp"
#include "coordinator/coordinator.hpp"

namespace ssi::cluster {

class PlacementPolicy {
 public:
  static constexpr std::uint64_t kMinRequests = 64;
  static constexpr double kShare = 0.6;
  static constexpr double kRatio = 2.0;
  static constexpr std::chrono::milliseconds kCooldown{3000};

  PlacementPolicy(std::uint32_t vcpus, std::uint32_t nodes, MoveQueue& moves)
      : vcpus_(vcpus), nodes_(nodes), moves_(moves), busy_(std::make_shared<std::atomic<bool>>(false)) {}

  // The coordinator's thread, every sample.
  void observe(const std::vector<coord::NodeReport>& nodes);

  // Pure: the node vCPU `v` should move to, given its requests by home in
  // the window (`delta`) and where it runs; nullopt = stay.
  static std::optional<std::uint32_t> choose(const std::vector<std::uint64_t>& delta, std::uint32_t here);

  std::uint64_t moves_made() const { return made_; }

 private:
  std::uint32_t vcpus_, nodes_;
  MoveQueue& moves_;
  std::shared_ptr<std::atomic<bool>> busy_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> last_;  // (vcpu, home) -> total
  std::map<std::uint32_t, std::chrono::steady_clock::time_point> moved_at_;
  std::uint64_t made_ = 0;
};

}  // namespace ssi::cluster
