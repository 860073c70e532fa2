// The barrier a checkpoint and a node's retirement share (docs/checkpoint.md,
// docs/mobility.md): every node parks every vCPU at an exit; later every
// node resumes (or stops).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include <kj/async.h>

#include "base/result.hpp"
#include "convert.hpp"

namespace ssi::coord {

// How long a node may take to park its vCPUs (one exit each).
inline constexpr std::uint32_t kPauseTimeoutMs = 10'000;

// Asks every node in `nodes` (null entries are skipped) to park its vCPUs.
// `done` runs once, after the last reply, with the first failure:
// Errc::kTimeout for a node that could not park in time, kDisconnected for
// one that is gone; nullopt when every node parked.
void pause_nodes(kj::TaskSet& tasks, const std::vector<Node::Client*>& nodes,
                 std::function<void(std::optional<Error>)> done);

// Resumes every node in `nodes`, or stops them (`stop`); fire and forget.
void resume_nodes(kj::TaskSet& tasks, const std::vector<Node::Client*>& nodes, bool stop);

}  // namespace ssi::coord
