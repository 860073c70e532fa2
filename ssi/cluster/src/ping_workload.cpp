// "ping": every node sends rpc round trips to every other node over the
// data-path transport and reports the latency distribution. Proves the
// transports connect across processes (or hosts) and shows their cost.
#include <atomic>
#include <algorithm>
#include <chrono>
#include <vector>

#include <fmt/format.h>

#include "base/exit_code.hpp"
#include "cluster/workload.hpp"

namespace ssi::cluster {
namespace {

constexpr rdma::FrameType kPing = 0xf001;

class PingWorkload final : public Workload {
 public:
  PingWorkload(NodeHost& host, const coord::MachineConfig& config)
      : host_(host), nodes_(config.nodes),
        rounds_(config.workload_arg) {}  // defaults: with_defaults()

  Result<void> install() {
    return host_.call([this]() -> Result<void> {
      auto& t = host_.transport();
      t.on_receive([&t](rdma::Frame&& f) {
        if (f.header.type != kPing) return;
        rdma::Frame reply = rdma::Frame::make(kPing);
        reply.payload = std::move(f.payload);
        (void)t.reply(f.header, std::move(reply));
      });
      return ok();
    });
  }

  coord::PhaseResult run_phase(std::uint32_t) override {
    std::vector<double> us;
    std::uint64_t errors = 0;
    auto r = host_.call([&]() -> Result<void> {
      std::vector<std::byte> bytes(64);
      for (std::uint32_t peer = 0; peer < nodes_; ++peer) {
        if (peer == host_.self().value()) continue;
        for (std::uint64_t i = 0; i < rounds_; ++i) {
          if (stopping_) return make_error(Errc::kShutdown, "stopped");
          rdma::Frame f = rdma::Frame::make(kPing);
          f.payload = rdma::Payload::borrow(bytes);
          auto t0 = std::chrono::steady_clock::now();
          auto reply = host_.transport().rpc(NodeId{peer}, std::move(f), std::chrono::seconds(5));
          auto dt = std::chrono::steady_clock::now() - t0;
          if (!reply.ok()) {
            ++errors;
            return make_error(reply.error().code, fmt::format("ping node {}: {}", peer,
                                                              reply.error().message));
          }
          us.push_back(std::chrono::duration<double, std::micro>(dt).count());
        }
      }
      return ok();
    }, std::chrono::seconds(120));
    coord::PhaseResult out;
    if (!r.ok() && !stopping_) {
      out.exit_code = exit_status(ExitCode::kNodeLost);
      out.message = r.error().to_string();
    }
    std::sort(us.begin(), us.end());
    auto pct = [&](double p) -> std::uint64_t {
      return us.empty() ? 0 : static_cast<std::uint64_t>(us[static_cast<std::size_t>(p * (us.size() - 1))]);
    };
    out.stats = {{"rpc_round_trips", us.size()},
                 {"rpc_errors", errors},
                 {"rtt_median_us", pct(0.5)},
                 {"rtt_p99_us", pct(0.99)}};
    return out;
  }

  // The machine stops: the round trips end at the next one (the worker
  // must return before the node can exit).
  void stop() override { stopping_ = true; }

 private:
  NodeHost& host_;
  std::uint32_t nodes_;
  std::uint64_t rounds_;
  std::atomic<bool> stopping_{false};
};

}  // namespace

Result<std::unique_ptr<Workload>> make_ping_workload(NodeHost& host,
                                                     const coord::MachineConfig& config) {
  auto w = std::make_unique<PingWorkload>(host, config);
  SSI_TRY(w->install());
  return std::unique_ptr<Workload>(std::move(w));
}

}  // namespace ssi::cluster
