// How a vCPU thread (or the device thread) uses the transport, whose
// methods run only on the node's reactor thread: the operation becomes a
// fiber there through LoopCalls, and the calling thread blocks until it
// finishes. Per-vCPU ordering follows: a vCPU has at most one operation in
// flight. Waits are bounded (the transport's own timeout) and end at once
// when the machine begins exiting.
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "multinode/loop_call.hpp"
#include "multinode/outbox.hpp"
#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"
#include "vcpu/io.hpp"

namespace ssi::multinode {

class DataPath {
 public:
  // Registers with `exit` (which must outlive this): an exit cancels every wait.
  DataPath(rdma::Reactor& reactor, rdma::Transport& transport, vcpu::ExitRequest& exit,
           std::chrono::milliseconds timeout);

  rdma::Reactor& reactor() { return reactor_; }
  rdma::Transport& transport() { return transport_; }
  // The calls into this node's loops (the reactor, the device thread).
  LoopCalls& calls() { return calls_; }

  // nullopt: the machine began exiting while we waited (result dropped).
  std::optional<Result<rdma::Frame>> rpc(NodeId peer, rdma::Frame request);
  std::optional<Result<void>> send(NodeId peer, rdma::Frame frame);
  // From any thread, without waiting (the machine-exit broadcast).
  void post_send(NodeId peer, rdma::Frame frame);
  // Frames that must leave in order but need no wait (IPIs); cancelled by the exit.
  Outbox& outbox() { return outbox_; }
  const Outbox& outbox() const { return outbox_; }

 private:
  template <typename T>
  std::optional<Result<T>> run(std::function<Result<T>()> op);

  rdma::Reactor& reactor_;
  rdma::Transport& transport_;
  std::chrono::milliseconds timeout_;
  LoopCalls calls_;
  Outbox outbox_;
};

}  // namespace ssi::multinode
