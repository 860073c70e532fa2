#include "cluster/placement_policy.hpp"

#include <cstdio>
#include <string>

namespace ssi::cluster {
namespace {

// "vcpu<K>.<suffix><N>" -> (K, N).
bool parse(const std::string& name, const std::string& suffix, std::uint32_t& k, std::uint32_t& n) {
  if (!name.starts_with("vcpu")) return false;
  auto dot = name.find('.');
  if (dot == std::string::npos || name.compare(dot + 1, suffix.size(), suffix) != 0) return false;
  try {
    k = static_cast<std::uint32_t>(std::stoul(name.substr(4, dot - 4)));
    n = static_cast<std::uint32_t>(std::stoul(name.substr(dot + 1 + suffix.size())));
  } catch (...) {
    return false;
  }
  return true;
}

}  // namespace

std::optional<std::uint32_t> PlacementPolicy::choose(const std::vector<std::uint64_t>& delta,
                                                     std::uint32_t here) {
  std::uint64_t total = 0;
  std::uint32_t best = here;
  for (std::uint32_t n = 0; n < delta.size(); ++n) {
    total += delta[n];
    if (delta[n] > delta[best]) best = n;
  }
  if (best == here || total < kMinRequests) return std::nullopt;
  double mine = here < delta.size() ? static_cast<double>(delta[here]) : 0.0;
  double theirs = static_cast<double>(delta[best]);
  if (theirs < kShare * static_cast<double>(total) || theirs < kRatio * mine) return std::nullopt;
  return best;
}

void PlacementPolicy::observe(const std::vector<coord::NodeReport>& nodes) {
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint64_t> total;
  std::vector<std::optional<std::uint32_t>> where(vcpus_);
  for (std::uint32_t node = 0; node < nodes.size(); ++node)
    for (const auto& [name, value] : nodes[node].last.stats) {
      std::uint32_t k = 0, n = 0;
      if (parse(name, "dsm_requests_home", k, n)) {
        if (k < vcpus_ && n < nodes_) total[{k, n}] += value;
      } else if (name.starts_with("vcpu") && name.ends_with(".run_ns")) {
        // The node running vCPU k reports its per-vCPU counters.
        try {
          auto v = static_cast<std::uint32_t>(std::stoul(name.substr(4, name.find('.') - 4)));
          if (v < vcpus_) where[v] = nodes[node].info.id.value();
        } catch (...) {
        }
      }
    }
  if (busy_->load()) return;  // keep the window open until the move is done
  auto now = std::chrono::steady_clock::now();
  for (std::uint32_t k = 0; k < vcpus_; ++k) {
    std::vector<std::uint64_t> delta(nodes_);
    for (std::uint32_t n = 0; n < nodes_; ++n) {
      std::uint64_t t = total[{k, n}], &last = last_[{k, n}];
      delta[n] = t >= last ? t - last : t;
      last = t;
    }
    if (!where[k]) continue;
    if (auto it = moved_at_.find(k); it != moved_at_.end() && now - it->second < kCooldown) continue;
    auto to = choose(delta, *where[k]);
    if (!to) continue;
    busy_->store(true);
    moved_at_[k] = now;
    ++made_;
    std::fprintf(stderr, "[ssi] placement: vCPU %u -> node %u (%llu of its last %s requests)\n", k, *to,
                 static_cast<unsigned long long>(delta[*to]), "window's");
    moves_.post({k, *to, [busy = busy_, k](Result<coord::MoveResult> r) {
                   if (!r.ok()) std::fprintf(stderr, "[ssi] placement: vCPU %u not moved: %s\n", k,
                                             r.error().message.c_str());
                   busy->store(false);
                 }});
    return;  // one at a time
  }
}

}  // namespace ssi::cluster
