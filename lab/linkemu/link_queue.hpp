// One emulated link direction (switch -> node): frames leave in FIFO order
// after the link's one-way delay (+ uniform jitter) and no faster than its
// rate allows (serialisation), like netem's delay+rate. Pure logic on a
// caller-supplied clock, so it is unit-tested without TAP devices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

namespace ssi::lab {

struct LinkParams {
  std::uint64_t delay_ns = 0;
  std::uint64_t jitter_ns = 0;  // uniform in [-jitter, +jitter], order kept
  double rate_gbit = 0;         // 0 = unlimited
  std::size_t queue_limit_bytes = 16u << 20;  // tail drop beyond this
};

class LinkQueue {
 public:
  struct Frame {
    std::uint64_t depart_ns;
    std::vector<std::byte> bytes;
  };

  LinkQueue(LinkParams p, std::uint64_t seed) : p_(p), rng_(seed) {}

  // Queues a frame that arrived at `now_ns`; false = dropped (queue full).
  bool push(std::uint64_t now_ns, std::vector<std::byte> bytes);
  // Earliest departure time, or UINT64_MAX if empty.
  std::uint64_t next_departure() const;
  bool due(std::uint64_t now_ns) const { return !q_.empty() && q_.front().depart_ns <= now_ns; }
  Frame pop() {
    Frame f = std::move(q_.front());
    q_.pop_front();
    queued_bytes_ -= f.bytes.size();
    return f;
  }
  bool empty() const { return q_.empty(); }
  std::size_t queued_bytes() const { return queued_bytes_; }
  std::uint64_t drops() const { return drops_; }

 private:
  LinkParams p_;
  std::mt19937_64 rng_;
  std::deque<Frame> q_;
  std::uint64_t wire_free_ns_ = 0;  // when the emulated wire finishes the last frame
  std::uint64_t last_depart_ns_ = 0;
  std::size_t queued_bytes_ = 0;
  std::uint64_t drops_ = 0;
};

}  // namespace ssi::lab
