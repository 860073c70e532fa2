// Transport: framed messages + page payloads between nodes, with an rpc()
// that suspends the calling fiber (not the thread) until the reply.
// Every method except shutdown() must be called on the reactor thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "rdma/dispatcher.hpp"
#include "rdma/frame.hpp"
#include "rdma/reactor.hpp"

namespace ssi::rdma {

// Backend-specific peer address: "tcp:HOST:PORT", "shm:NAME", "loop:K",
// "verbs:HOST:PORT" (the verbs setup side channel).
using Address = std::string;

class Transport {
 public:
  // Runs in a fiber of its own for every non-reply frame received; it may
  // block (rpc to a third node, wait on a page) without stalling others.
  using Handler = std::function<void(Frame&& frame)>;
  // A peer closed, died, or sent garbage; its connection is gone.
  using PeerDownHandler = std::function<void(NodeId peer, const Error& why)>;

  virtual ~Transport() = default;

  virtual NodeId self() const = 0;
  virtual std::string_view kind() const = 0;  // "tcp", "shm", "loopback", "verbs"
  // Where peers reach this node (valid after creation).
  virtual Address local_address() const = 0;

  // Establishes the connection to `peer` (idempotent; either side may call).
  virtual Result<void> connect(NodeId peer, const Address& address) = 0;
  // Fire-and-forget, ordered per peer pair. May suspend the fiber for
  // back-pressure. Sets header.src/dst.
  virtual Result<void> send(NodeId peer, Frame frame) = 0;
  // Sends `request` and suspends this fiber until the matching reply or
  // the timeout; kDisconnected if the peer goes down meanwhile.
  virtual Result<Frame> rpc(NodeId peer, Frame request,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) = 0;
  // Answers a request received by the Handler.
  virtual Result<void> reply(const FrameHeader& request, Frame reply) = 0;

  // Non-reply frames whose type a route() claims go to that route's
  // handler; all others to the on_receive() handler (none: dropped).
  // kInvalidArgument if `range` overlaps another route or the transport's
  // own types. Each layer routes its own range (the DSM, the machine).
  virtual Result<void> route(FrameRange range, Handler handler) = 0;
  virtual void unroute(FrameRange range) = 0;
  virtual void on_receive(Handler handler) = 0;
  virtual void on_peer_down(PeerDownHandler handler) = 0;

  // Closes every connection; pending rpcs fail with kShutdown.
  virtual void shutdown() = 0;
};

}  // namespace ssi::rdma
