#include "cluster/move_queue.hpp"

#include <cstdio>
#include <optional>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/metrics.hpp"
#include "control_reply.hpp"

namespace ssi::cluster {
namespace {

// The unsigned number after `"key":` in a one-line JSON object.
std::optional<std::uint32_t> json_uint(const std::string& s, const std::string& key) {
  auto at = s.find("\"" + key + "\"");
  if (at == std::string::npos) return std::nullopt;
  at = s.find(':', at);
  if (at == std::string::npos) return std::nullopt;
  ++at;
  while (at < s.size() && s[at] == ' ') ++at;
  std::uint64_t v = 0;
  std::size_t digits = 0;
  for (; at < s.size() && s[at] >= '0' && s[at] <= '9' && digits < 10; ++at, ++digits)
    v = v * 10 + static_cast<std::uint64_t>(s[at] - '0');
  if (digits == 0 || v > 0xffffffffu) return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

}  // namespace

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

std::string answer_move_request(MoveQueue& queue, const std::string& request) {
  auto vcpu = json_uint(request, "vcpu");
  auto to = json_uint(request, "to");
  if (!vcpu || !to) return qmp_error("move-vcpu needs \"vcpu\" and \"to\" (numbers)");
  auto r = queue.move(*vcpu, *to, std::chrono::seconds(10));
  if (!r.ok()) return qmp_error(r.error().message);
  return fmt::format(
      "{{\"return\":{{\"vcpu\":{},\"from\":{},\"to\":{},\"pause_us\":{},\"total_us\":{},\"state_bytes\":{}}}}}",
      r->vcpu, r->from, r->to, r->pause_us, r->total_us, r->state_bytes);
}

int run_move_command(const std::string& address, std::uint32_t vcpu, std::uint32_t to, bool json) {
  auto reply = metrics_request(address, fmt::format("{{\"execute\":\"move-vcpu\",\"vcpu\":{},\"to\":{}}}\n", vcpu, to),
                               std::chrono::seconds(12));
  if (!reply.ok()) {
    std::fprintf(stderr, "ssi: error: move: %s\n", reply.error().message.c_str());
    return exit_status(ExitCode::kError);
  }
  if (reply->find("\"return\"") == std::string::npos) {
    auto d = reply->find("\"desc\":\"");
    std::string why = d == std::string::npos ? *reply : reply->substr(d + 8, reply->rfind('"') - d - 8);
    std::fprintf(stderr, "ssi: error: move: %s\n", why.c_str());
    return exit_status(ExitCode::kError);
  }
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  std::printf("vCPU %u: node %u -> node %u, paused %u us (move %u us, state %u bytes)\n", vcpu,
              json_uint(*reply, "from").value_or(0), to, json_uint(*reply, "pause_us").value_or(0),
              json_uint(*reply, "total_us").value_or(0), json_uint(*reply, "state_bytes").value_or(0));
  return 0;
}

}  // namespace ssi::cluster
