#include "cluster/move_queue.hpp"

#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/metrics.hpp"
#include "control_reply.hpp"

namespace ssi::cluster {
void MoveQueue::post(coord::MoveOrder order) {
  std::lock_guard lock(mu_);
  orders_.push_back(std::move(order));
}

std::optional<coord::MoveOrder> MoveQueue::next() {
  std::lock_guard lock(mu_);
  if (orders_.empty()) return std::nullopt;
  coord::MoveOrder o = std::move(orders_.front());
  orders_.pop_front();
  return o;
}

Result<coord::MoveResult> MoveQueue::move(std::uint32_t vcpu, std::uint32_t to,
                                          std::chrono::milliseconds timeout) {
  AwaitedAnswer<coord::MoveResult> answer;
  {
    std::lock_guard lock(mu_);
    orders_.push_back({vcpu, to, answer.callback()});
  }
  if (auto r = answer.wait(timeout)) return std::move(*r);
  // Withdraw it if the coordinator has not taken it (no machine running).
  std::lock_guard lock(mu_);
  std::erase_if(orders_, [&](const coord::MoveOrder& o) { return o.vcpu == vcpu && o.to == to; });
  return make_error(Errc::kTimeout, fmt::format("no answer to the move of vCPU {} to node {} within {} ms",
                                                vcpu, to, timeout.count()));
}

std::string answer_move_request(MoveQueue& queue, const ControlJson& request) {
  auto vcpu = control_uint(request, "vcpu");
  auto to = control_uint(request, "to");
  if (!vcpu || !to) return qmp_error("move-vcpu needs \"vcpu\" and \"to\" (numbers)");
  auto r = queue.move(*vcpu, *to, std::chrono::seconds(10));
  if (!r.ok()) return qmp_error(r.error().message);
  return qmp_return({{"vcpu", r->vcpu}, {"from", r->from}, {"to", r->to}, {"pause_us", r->pause_us},
                     {"total_us", r->total_us}, {"state_bytes", r->state_bytes}});
}

int run_move_command(const std::string& address, std::uint32_t vcpu, std::uint32_t to, bool json) {
  std::string request = ControlJson{{"execute", "move-vcpu"}, {"vcpu", vcpu}, {"to", to}}.dump() + "\n";
  auto reply = metrics_request(address, request, std::chrono::seconds(12));
  auto r = reply.ok() ? control_return(*reply) : Result<ControlJson>(reply.error());
  if (!r.ok()) {
    std::fprintf(stderr, "ssi: error: move: %s\n", r.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  std::printf("vCPU %u: node %u -> node %u, paused %u us (move %u us, state %u bytes)\n", vcpu,
              control_uint(*r, "from").value_or(0), to, control_uint(*r, "pause_us").value_or(0),
              control_uint(*r, "total_us").value_or(0), control_uint(*r, "state_bytes").value_or(0));
  return 0;
}

}  // namespace ssi::cluster
