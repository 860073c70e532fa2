// How a vCPU thread uses the transport, whose methods run only on the
// node's reactor thread: the operation becomes a fiber there, and the vCPU
// thread blocks until it finishes. Per-vCPU ordering follows: a vCPU has at
// most one operation in flight. Waits are bounded (the transport's own
// timeout) and end early when the machine is exiting.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"
#include "vcpu/io.hpp"

namespace ssi::multinode {

class DataPath {
 public:
  DataPath(rdma::Reactor& reactor, rdma::Transport& transport, const vcpu::ExitRequest& exit,
           std::chrono::milliseconds timeout)
      : reactor_(reactor), transport_(transport), exit_(exit), timeout_(timeout) {}

  rdma::Reactor& reactor() { return reactor_; }
  rdma::Transport& transport() { return transport_; }

  // nullopt: the machine began exiting while we waited (result dropped).
  std::optional<Result<rdma::Frame>> rpc(NodeId peer, rdma::Frame request);
  std::optional<Result<void>> send(NodeId peer, rdma::Frame frame);
  // From any thread, without waiting (the machine-exit broadcast).
  void post_send(NodeId peer, rdma::Frame frame);

 private:
  template <typename T>
  std::optional<Result<T>> run(std::function<Result<T>()> op);

  rdma::Reactor& reactor_;
  rdma::Transport& transport_;
  const vcpu::ExitRequest& exit_;
  std::chrono::milliseconds timeout_;
};

}  // namespace ssi::multinode
