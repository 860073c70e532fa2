#include "multinode/data_path.hpp"

#include <future>
#include <memory>

namespace ssi::multinode {

template <typename T>
std::optional<Result<T>> DataPath::run(std::function<Result<T>()> op) {
  if (reactor_.on_reactor_thread()) return op();  // already in a fiber
  // Shared with the fiber: it may outlive this wait if the machine exits.
  auto done = std::make_shared<std::promise<Result<T>>>();
  auto future = done->get_future();
  reactor_.post([op = std::move(op), done] { done->set_value(op()); });
  // The fiber itself is bounded by the transport timeout; the slices only
  // let a stopping machine stop waiting for a peer that will not answer.
  while (future.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
    if (exit_.requested()) return std::nullopt;
  }
  return future.get();
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
