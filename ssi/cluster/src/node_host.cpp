#include "cluster/node_host.hpp"

#include <future>

#include <fmt/format.h>

#include "rdma/factory.hpp"

namespace ssi::cluster {

Result<std::unique_ptr<NodeHost>> NodeHost::create(NodeId self, const std::string& kind,
                                                   const std::string& listen, const MachineSecret& secret) {
  std::unique_ptr<NodeHost> host(new NodeHost());
  host->self_ = self;
  SSI_ASSIGN_OR_RETURN(host->reactor_, rdma::Reactor::create());
  rdma::TransportConfig config;
  config.kind = kind;
  config.self = self;
  config.listen = listen;
  config.secret = secret;
  SSI_ASSIGN_OR_RETURN(host->transport_, rdma::make_transport(config, *host->reactor_));
  rdma::Reactor* reactor = host->reactor_.get();
  host->thread_ = std::thread([reactor] { reactor->run(); });
  return host;
}

NodeHost::~NodeHost() { shutdown(); }

Result<void> NodeHost::call(std::function<Result<void>()> fn, std::chrono::milliseconds timeout) {
  // A task posted to a stopped reactor never runs: fail now, not at the timeout.
  if (down_) return make_error(Errc::kShutdown, "reactor call after the node host shut down");
  auto done = std::make_shared<std::promise<Result<void>>>();
  auto future = done->get_future();
  reactor_->post([fn = std::move(fn), done] { done->set_value(fn()); });
  if (future.wait_for(timeout) != std::future_status::ready)
    return make_error(Errc::kTimeout,
                      fmt::format("reactor call did not finish within {} ms", timeout.count()));
  return future.get();
}

Result<void> NodeHost::connect_all(const std::vector<std::string>& addresses) {
  return call([this, addresses]() -> Result<void> {
    // Each pair is dialled once, by the higher id; the lower one accepts.
    // Every node finishes this before the coordinator starts phase 0.
    for (std::size_t i = 0; i < addresses.size() && i < self_.value(); ++i) {
      auto r = transport_->connect(NodeId{static_cast<std::uint32_t>(i)}, addresses[i]);
      if (!r.ok())
        return make_error(r.error().code, fmt::format("connect to node {} at {}: {}", i,
                                                      addresses[i], r.error().message));
    }
    return ok();
  });
}

void NodeHost::shutdown() {
  if (down_) return;
  down_ = true;
  if (transport_) transport_->shutdown();
  if (reactor_) reactor_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ssi::cluster
