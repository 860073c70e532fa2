#include "cluster/retire_orders.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/metrics.hpp"
#include "control_reply.hpp"

namespace ssi::cluster {
namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(600);  // pre-copy under emulation takes a while

}  // namespace

void RetireOrders::feed(coord::CoordinatorOptions& co) {
  co.next_retire = [this] { return next(); };
  co.on_retired = [this](std::uint32_t id) { retired_.insert(id); };
}

std::optional<coord::RetireOrder> RetireOrders::next() {
  std::lock_guard lock(mu_);
  if (queue_.empty()) return std::nullopt;
  auto o = std::move(queue_.front());
  queue_.pop_front();
  return o;
}

void RetireOrders::close() {
  std::deque<coord::RetireOrder> left;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    left.swap(queue_);
  }
  for (auto& o : left)
    if (o.done) o.done(make_error(Errc::kShutdown, "the machine ended before the node retired"));
}

Result<coord::RetireResult> RetireOrders::retire(std::uint32_t node, std::optional<std::uint32_t> to,
                                                 bool precopy, std::chrono::milliseconds timeout) {
  AwaitedAnswer<coord::RetireResult> answer;
  {
    std::lock_guard lock(mu_);
    if (closed_) return make_error(Errc::kShutdown, "the machine is not running");
    queue_.push_back({node, to, precopy, answer.callback()});
  }
  if (auto r = answer.wait(timeout)) return std::move(*r);
  return make_error(Errc::kTimeout, fmt::format("no answer to the retire order within {} s",
                                                std::chrono::duration_cast<std::chrono::seconds>(timeout).count()));
}

std::string answer_retire_request(RetireOrders& orders, const ControlJson& j) {
  auto node = control_uint(j, "node");
  if (!node) return qmp_error("retire-node needs \"node\": a node number");
  const bool precopy = !(j.contains("precopy") && j["precopy"].is_boolean() && !j["precopy"].get<bool>());
  auto r = orders.retire(*node, control_uint(j, "to"), precopy, kAnswerTimeout);
  if (!r.ok()) return qmp_error(r.error().message);
  ControlJson out{{"from", r->from},
                  {"to", r->to},
                  {"vcpus_moved", r->vcpus_moved},
                  {"moves_pause_ms", r->moves_us / 1000.0},
                  {"precopy_total_ms", r->precopy_us / 1000.0},
                  {"pause_ms", r->pause_us / 1000.0},
                  {"total_ms", r->total_us / 1000.0}};
  merge_fields(out, r->precopy);   // the new node's
  merge_fields(out, r->handover);  // the retiring node's
  return qmp_return(out);
}

int run_retire_command(const std::string& address, std::uint32_t node, std::optional<std::uint32_t> to,
                       bool precopy, bool json) {
  auto fail = [](const std::string& why) {
    std::fprintf(stderr, "ssi: error: retire: %s\n", why.c_str());
    return exit_status(ExitCode::kError);
  };
  if (node == 0) return fail("node 0 holds the devices: it cannot retire");
  ControlJson req{{"execute", "retire-node"}, {"node", node}};
  if (to) req["to"] = *to;
  if (!precopy) req["precopy"] = false;
  auto reply = metrics_request(address, req.dump() + "\n", kAnswerTimeout + std::chrono::seconds(10));
  auto r = reply.ok() ? control_return(*reply) : Result<ControlJson>(reply.error());
  if (!r.ok()) return fail(r.error().message);
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  auto num = [&](const char* key) { return r->contains(key) ? (*r)[key].dump() : std::string("0"); };
  std::printf("node %u retired: node %s took its share (%s vCPU(s) moved, pre-copy %s pages in %s ms, "
              "paused %s ms, %s pages handed over at the barrier)\n",
              node, num("to").c_str(), num("vcpus_moved").c_str(), num("precopy_pages").c_str(),
              num("precopy_total_ms").c_str(), num("pause_ms").c_str(), num("entry_pages").c_str());
  return 0;
}

}  // namespace ssi::cluster
