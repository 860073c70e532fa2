// Frames a node sends to its peers without waiting for them (IPIs): every
// thread queues into one FIFO per peer, and one fiber per peer at a time
// hands that queue to the transport on the reactor thread, in order. So an
// INIT queued before a SIPI arrives before it, and a burst of IPIs costs
// the sending vCPU a queue push each, not a trip through the reactor. A
// full queue (kMaxQueued frames) makes the sender wait for room; cancel()
// (the machine's exit) ends that wait and drops what is still queued. A
// send that fails before cancel() is reported to the frame's `on_error`,
// on the reactor thread.
//
// A frame may carry a merge key: if the frame queued last for that peer,
// not yet handed to the transport, has the same key, the new frame is
// merged into it (not queued). The IPI router uses this for NMIs to one
// vCPU: a second NMI that reaches the target before it took the first is
// latched into the first (one NMI pending at most), so two consecutive
// unsent NMIs to the same vCPU have the effect of one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "rdma/reactor.hpp"
#include "rdma/transport.hpp"

namespace ssi::multinode {

class Outbox {
 public:
  using OnError = std::function<void(const Error&)>;
  static constexpr std::size_t kMaxQueued = 256;

  // `transport` and `reactor` must outlive every frame queued here.
  Outbox(rdma::Reactor& reactor, rdma::Transport& transport);

  // Any thread. False: not queued, the outbox was cancelled. A non-zero
  // `merge_key` allows merging into the peer's last unsent frame with the
  // same key (then true, and the frame is counted in merged()).
  bool send(NodeId peer, rdma::Frame frame, OnError on_error, std::uint64_t merge_key = 0);
  // Any thread: waiting senders give up, queued frames are dropped.
  void cancel();
  std::uint64_t sent() const;    // frames the transport took
  std::uint64_t merged() const;  // frames merged into a queued one

 private:
  struct State;  // shared with the drain fibers, which may outlive this
  rdma::Reactor& reactor_;
  std::shared_ptr<State> state_;
};

}  // namespace ssi::multinode
