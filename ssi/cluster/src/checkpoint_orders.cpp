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

// The string after `"key":"`; no escapes (a directory with '"' or '\' is refused).
std::optional<std::string> json_string(const std::string& s, const std::string& key) {
  auto at = s.find("\"" + key + "\"");
  if (at == std::string::npos) return std::nullopt;
  at = s.find('"', s.find(':', at));
  if (at == std::string::npos) return std::nullopt;
  auto end = s.find('"', at + 1);
  if (end == std::string::npos) return std::nullopt;
  std::string v = s.substr(at + 1, end - at - 1);
  if (v.find('\\') != std::string::npos) return std::nullopt;
  return v;
}

}  // namespace

std::string answer_checkpoint_request(CheckpointOrders& orders, const std::string& request) {
  auto dir = json_string(request, "dir");
  if (!dir || dir->empty() || !dir->starts_with("/"))
    return qmp_error("checkpoint needs \"dir\": an absolute directory (no '\"' or '\\' in it)");
  bool resume = request.find("\"continue\":true") != std::string::npos ||
                request.find("\"continue\": true") != std::string::npos;
  auto r = orders.checkpoint(*dir, resume, kAnswerTimeout);
  if (!r.ok()) return qmp_error(r.error().message);
  return fmt::format("{{\"return\":{{\"dir\":\"{}\",\"continued\":{},\"pause_ms\":{:.3f},\"total_ms\":{:.3f},{}}}}}",
                     r->dir, resume, r->pause_us / 1000.0, r->total_us / 1000.0, r->summary);
}

int run_checkpoint_command(const std::string& address, const std::string& dir, bool resume, bool json) {
  auto fail = [](const std::string& why) {
    std::fprintf(stderr, "ssi: error: checkpoint: %s\n", why.c_str());
    return exit_status(ExitCode::kError);
  };
  if (dir.find('"') != std::string::npos || dir.find('\\') != std::string::npos || dir.find('\n') != std::string::npos)
    return fail("the directory name may not contain '\"', '\\' or a newline");
  auto reply = metrics_request(address,
                               fmt::format("{{\"execute\":\"checkpoint\",\"dir\":\"{}\",\"continue\":{}}}\n", dir, resume),
                               kAnswerTimeout + std::chrono::seconds(10));
  if (!reply.ok()) return fail(reply.error().message);
  if (reply->find("\"return\"") == std::string::npos) {
    auto d = reply->find("\"desc\":\"");
    return fail(d == std::string::npos ? *reply : reply->substr(d + 8, reply->rfind('"') - d - 8));
  }
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  auto pause = reply->find("\"pause_ms\":");
  auto total = reply->find("\"total_ms\":");
  std::printf("checkpoint saved to %s, paused %s ms (total %s ms); the machine %s\n", dir.c_str(),
              reply->substr(pause + 11, reply->find(',', pause) - pause - 11).c_str(),
              reply->substr(total + 11, reply->find(',', total) - total - 11).c_str(),
              resume ? "continues" : "stopped");
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
