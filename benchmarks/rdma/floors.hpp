// The raw floors our transports are compared with, measured between two
// processes with the same placement and wait policy (spin, then sleep) as
// ours, but without frames, fibers or the reactor:
//  - unix: a SOCK_STREAM socketpair ping-pong;
//  - tcp:  127.0.0.1 with TCP_NODELAY on both ends;
//  - shm:  the bare ShmRing pair + eventfd doorbells (same sleep protocol).
#pragma once

#include <cstddef>
#include <vector>

#include "bench_env.hpp"

namespace ssi::bench {

enum class FloorKind { kUnix, kTcp, kShm };
const char* floor_name(FloorKind kind);

// Nanoseconds of each of `iterations` round trips carrying `bytes` each way
// (after a short warm-up); empty if the floor could not be set up.
std::vector<double> floor_round_trips(FloorKind kind, std::size_t bytes, const Placement& where,
                                      int iterations);
// Seconds to move `count` messages of `bytes` one way plus a final 1-byte
// ack; negative if the floor could not be set up.
double floor_stream(FloorKind kind, std::size_t bytes, const Placement& where, int count);

}  // namespace ssi::bench
