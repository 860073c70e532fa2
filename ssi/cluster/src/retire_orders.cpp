#include "cluster/retire_orders.hpp"

#include <cstdio>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/metrics.hpp"
#include "control_reply.hpp"

namespace ssi::cluster {
namespace {

constexpr auto kAnswerTimeout = std::chrono::seconds(600);  // pre-copy under emulation takes a while

// The number after `"key":`, if any.
std::optional<std::uint32_t> json_uint(const std::string& s, const std::string& key) {
  auto at = s.find("\"" + key + "\":");
  if (at == std::string::npos) return std::nullopt;
  at += key.size() + 3;
  while (at < s.size() && s[at] == ' ') ++at;
  if (at >= s.size() || s[at] < '0' || s[at] > '9') return std::nullopt;
  return static_cast<std::uint32_t>(std::stoul(s.substr(at, 9)));
}

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

std::string answer_retire_request(RetireOrders& orders, const std::string& request) {
  auto node = json_uint(request, "node");
  if (!node) return qmp_error("retire-node needs \"node\": a node number");
  const bool precopy = request.find("\"precopy\":false") == std::string::npos;
  auto r = orders.retire(*node, json_uint(request, "to"), precopy, kAnswerTimeout);
  if (!r.ok()) return qmp_error(r.error().message);
  auto fields = [](const std::string& f) { return f.empty() ? std::string() : "," + f; };
  return fmt::format("{{\"return\":{{\"from\":{},\"to\":{},\"vcpus_moved\":{},\"moves_pause_ms\":{:.3f},"
                     "\"precopy_total_ms\":{:.3f},\"pause_ms\":{:.3f},\"total_ms\":{:.3f}{}{}}}}}",
                     r->from, r->to, r->vcpus_moved, r->moves_us / 1000.0, r->precopy_us / 1000.0,
                     r->pause_us / 1000.0, r->total_us / 1000.0, fields(r->precopy), fields(r->handover));
}

int run_retire_command(const std::string& address, std::uint32_t node, std::optional<std::uint32_t> to,
                       bool precopy, bool json) {
  auto fail = [](const std::string& why) {
    std::fprintf(stderr, "ssi: error: retire: %s\n", why.c_str());
    return exit_status(ExitCode::kError);
  };
  if (node == 0) return fail("node 0 holds the devices: it cannot retire");
  std::string req = fmt::format("{{\"execute\":\"retire-node\",\"node\":{}{}{}}}\n", node,
                                to ? fmt::format(",\"to\":{}", *to) : "", precopy ? "" : ",\"precopy\":false");
  auto reply = metrics_request(address, req, kAnswerTimeout + std::chrono::seconds(10));
  if (!reply.ok()) return fail(reply.error().message);
  if (reply->find("\"return\"") == std::string::npos) {
    auto d = reply->find("\"desc\":\"");
    return fail(d == std::string::npos ? *reply : reply->substr(d + 8, reply->rfind('"') - d - 8));
  }
  if (json) {
    std::fputs(reply->c_str(), stdout);
    return 0;
  }
  auto field = [&](const std::string& key) {
    auto at = reply->find("\"" + key + "\":");
    if (at == std::string::npos) return std::string("0");  // no pre-copy
    at += key.size() + 3;
    return reply->substr(at, reply->find_first_of(",}", at) - at);
  };
  std::printf("node %u retired: node %s took its share (%s vCPU(s) moved, pre-copy %s pages in %s ms, "
              "paused %s ms, %s pages handed over at the barrier)\n",
              node, field("to").c_str(), field("vcpus_moved").c_str(), field("precopy_pages").c_str(),
              field("precopy_total_ms").c_str(), field("pause_ms").c_str(), field("entry_pages").c_str());
  return 0;
}

}  // namespace ssi::cluster
