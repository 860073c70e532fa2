#include "multinode/data_path.hpp"

#include <memory>

namespace ssi::multinode {

DataPath::DataPath(rdma::Reactor& reactor, rdma::Transport& transport, vcpu::ExitRequest& exit,
                   std::chrono::milliseconds timeout)
    : reactor_(reactor), transport_(transport), timeout_(timeout) {
  exit.add_listener([this] { calls_.cancel_all(); });
}

template <typename T>
std::optional<Result<T>> DataPath::run(std::function<Result<T>()> op) {
  if (reactor_.on_reactor_thread()) return op();  // already in a fiber
  return calls_.call<T>([this](LoopCalls::Task t) { reactor_.post(std::move(t)); },
                        std::move(op));
}

std::optional<Result<rdma::Frame>> DataPath::rpc(NodeId peer, rdma::Frame request) {
  auto shared = std::make_shared<rdma::Frame>(std::move(request));
  // Captures no `this`: the fiber may outlive the machine that asked.
  return run<rdma::Frame>([t = &transport_, to = timeout_, peer, shared]() -> Result<rdma::Frame> {
    return t->rpc(peer, std::move(*shared), to);
  });
}

std::optional<Result<void>> DataPath::send(NodeId peer, rdma::Frame frame) {
  auto shared = std::make_shared<rdma::Frame>(std::move(frame));
  return run<void>([t = &transport_, peer, shared]() -> Result<void> {
    return t->send(peer, std::move(*shared));
  });
}

void DataPath::post_send(NodeId peer, rdma::Frame frame) {
  auto shared = std::make_shared<rdma::Frame>(std::move(frame));
  reactor_.post([t = &transport_, peer, shared] { (void)t->send(peer, std::move(*shared)); });
}

}  // namespace ssi::multinode
