#include "link_queue.hpp"

#include <algorithm>
#include <limits>

namespace ssi::lab {

bool LinkQueue::push(std::uint64_t now_ns, std::vector<std::byte> bytes) {
  if (queued_bytes_ + bytes.size() > p_.queue_limit_bytes) {
    ++drops_;
    return false;
  }
  // Serialisation: the frame occupies the wire after the previous one.
  std::uint64_t start = std::max(now_ns, wire_free_ns_);
  std::uint64_t wire_ns = p_.rate_gbit > 0
      ? static_cast<std::uint64_t>(static_cast<double>(bytes.size()) * 8.0 / p_.rate_gbit)
      : 0;
  wire_free_ns_ = start + wire_ns;
  std::int64_t jitter = 0;
  if (p_.jitter_ns > 0) {
    std::uniform_int_distribution<std::int64_t> d(-static_cast<std::int64_t>(p_.jitter_ns),
                                                  static_cast<std::int64_t>(p_.jitter_ns));
    jitter = d(rng_);
  }
  std::int64_t depart = static_cast<std::int64_t>(wire_free_ns_ + p_.delay_ns) + jitter;
  // Never reorder (TCP would take it as loss), never depart before arrival.
  std::uint64_t d = std::max<std::uint64_t>({static_cast<std::uint64_t>(std::max<std::int64_t>(depart, 0)),
                                             last_depart_ns_, now_ns});
  last_depart_ns_ = d;
  queued_bytes_ += bytes.size();
  q_.push_back({d, std::move(bytes)});
  return true;
}

std::uint64_t LinkQueue::next_departure() const {
  return q_.empty() ? std::numeric_limits<std::uint64_t>::max() : q_.front().depart_ns;
}

}  // namespace ssi::lab
