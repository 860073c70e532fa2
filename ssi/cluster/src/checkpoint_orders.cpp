#include "cluster/checkpoint_orders.hpp"

#include <cstdio>

#include <fmt/format.h>

namespace ssi::cluster {

void CheckpointOrders::feed(coord::CoordinatorOptions& co) {
  co.next_checkpoint = [this] { return next(); };
  if (!plan_.enabled() || plan_.on_console.empty()) return;
  co.config.checkpoint_on = plan_.on_console;
  co.sample_period = std::min(co.sample_period, std::chrono::milliseconds(100));
  co.on_sample = [this, inner = std::move(co.on_sample)](const std::vector<coord::NodeReport>& nodes) {
    if (inner) inner(nodes);
    for (const auto& n : nodes)
      for (const auto& [name, value] : n.last.stats)
        if (name == "checkpoint_console_matched" && value != 0) matched_ = true;
  };
}

void CheckpointOrders::push(coord::CheckpointOrder order) {
  std::lock_guard lock(mu_);
  queue_.push_back(std::move(order));
}

std::optional<coord::CheckpointOrder> CheckpointOrders::next() {
  if (plan_.enabled() && !planned_done_) {
    bool due = matched_ || (plan_.after_s > 0 && std::chrono::steady_clock::now() - started_ >=
                                                     std::chrono::duration<double>(plan_.after_s));
    if (due) {
      planned_done_ = true;
      // The machine stops after it; one machine-readable line (as on one node).
      return coord::CheckpointOrder{plan_.dir, false, [](Result<coord::CheckpointResult> r) {
                                      if (!r.ok()) return;  // the machine's failure says why
                                      std::fprintf(stderr,
                                                   "ssi: checkpoint saved to %s: {\"pause_ms\": %.3f, "
                                                   "\"total_ms\": %.3f, %s}\n",
                                                   r->dir.c_str(), r->pause_us / 1000.0,
                                                   r->total_us / 1000.0, r->summary.c_str());
                                    }};
    }
  }
  std::lock_guard lock(mu_);
  if (queue_.empty()) return std::nullopt;
  auto o = std::move(queue_.front());
  queue_.pop_front();
  return o;
}

}  // namespace ssi::cluster
