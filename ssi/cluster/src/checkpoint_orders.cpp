#include "cluster/checkpoint_orders.hpp"

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/metrics.hpp"
#include "control_reply.hpp"

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
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      queue_.push_back(std::move(order));
      return;
    }
  }
  if (order.done) order.done(make_error(Errc::kShutdown, "the machine is not running"));
}

void CheckpointOrders::close() {
  std::deque<coord::CheckpointOrder> left;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    left.swap(queue_);
  }
  for (auto& o : left)
    if (o.done) o.done(make_error(Errc::kShutdown, "the machine ended before the checkpoint"));
}

Result<coord::CheckpointResult> CheckpointOrders::checkpoint(const std::string& dir, bool resume,
                                                             std::chrono::milliseconds timeout) {
  AwaitedAnswer<coord::CheckpointResult> answer;
  push({dir, resume, answer.callback()});
  if (auto r = answer.wait(timeout)) return std::move(*r);
  return make_error(Errc::kTimeout, fmt::format("no answer to the checkpoint within {} s",
                                                std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
}

namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(600);  // a checkpoint under emulation takes minutes

}  // namespace

std::string answer_checkpoint_request(CheckpointOrders& orders, const ControlJson& j) {
  std::string dir = j.contains("dir") && j["dir"].is_string() ? j["dir"].get<std::string>() : "";
  if (!dir.starts_with("/")) return qmp_error("checkpoint needs \"dir\": an absolute directory");
  bool resume = j.contains("continue") && j["continue"].is_boolean() && j["continue"].get<bool>();
  auto r = orders.checkpoint(dir, resume, kAnswerTimeout);
  if (!r.ok()) return qmp_error(r.error().message);
  ControlJson out{{"dir", r->dir}, {"continued", resume}, {"pause_ms", r->pause_us / 1000.0},
                  {"total_ms", r->total_us / 1000.0}};
  merge_fields(out, r->summary);  // node 0's
  return qmp_return(out);
}

int run_checkpoint_command(const std::string& address, const std::string& dir, bool resume, bool json) {
  std::string request = ControlJson{{"execute", "checkpoint"}, {"dir", dir}, {"continue", resume}}.dump() + "\n";
  auto reply = metrics_request(address, request, kAnswerTimeout + std::chrono::seconds(10));
  auto r = reply.ok() ? control_return(*reply) : Result<ControlJson>(reply.error());
  if (!r.ok()) {
    std::fprintf(stderr, "ssi: error: checkpoint: %s\n", r.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  std::printf("checkpoint saved to %s, paused %.3f ms (total %.3f ms); the machine %s\n", dir.c_str(),
              r->value("pause_ms", 0.0), r->value("total_ms", 0.0), resume ? "continues" : "stopped");
  return 0;
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
