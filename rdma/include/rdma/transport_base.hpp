// TransportBase: what every backend shares. It implements rpc() (request
// ids, timeouts, failing pending rpcs when a peer goes down or on shutdown),
// reply(), and the dispatch of received frames (replies complete rpcs; other
// frames run their route's Handler in a fiber of their own). A backend implements only
// send_frame() (raw frame out), close_all() (drop every connection), and
// calls deliver() / peer_down() from its receive path on the reactor thread.
#pragma once

#include <cstdint>
#include <unordered_map>

#include "rdma/transport.hpp"

namespace ssi::rdma {

class TransportBase : public Transport {
 public:
  TransportBase(NodeId self, Reactor& reactor);
  ~TransportBase() override;

  NodeId self() const override { return self_; }
  Result<void> send(NodeId peer, Frame frame) final;
  // A reply carrying kFlagError comes back as an Error with the code in
  // arg0 and the payload as message (see reply_error()).
  Result<Frame> rpc(NodeId peer, Frame request, std::chrono::milliseconds timeout) final;
  using Transport::rpc;
  Result<void> reply(const FrameHeader& request, Frame reply) final;
  // Answers a request with an error (kFlagError, arg0 = code, payload = message).
  Result<void> reply_error(const FrameHeader& request, Errc code, std::string_view message);
  // Handlers run in fibers of their own, possibly after the frame or event
  // that triggered them; reset them (pass {}) before what they capture dies.
  Result<void> route(FrameRange range, Handler handler) final {
    return dispatcher_.add(range, std::move(handler));
  }
  void unroute(FrameRange range) final { dispatcher_.remove(range); }
  void on_receive(Handler handler) final { dispatcher_.set_fallback(std::move(handler)); }
  void on_peer_down(PeerDownHandler handler) final { peer_down_handler_ = std::move(handler); }
  // Thread-safe. Fails pending rpcs with kShutdown, then close_all().
  void shutdown() final;

  bool is_shut_down() const { return shut_down_; }
  std::size_t pending_rpcs() const { return pending_.size(); }
  // Handler fibers started and not yet finished: a backend's receive path
  // yields when this grows, as back-pressure on fast senders.
  std::size_t handlers_running() const { return handlers_running_; }

 protected:
  // Sends a frame whose header is complete (src, dst, payload_len set and
  // valid). May suspend the fiber. kDisconnected if the peer is gone.
  virtual Result<void> send_frame(NodeId peer, Frame&& frame) = 0;
  // Drops every connection and stops receiving; called once, on the
  // reactor thread (or with the reactor not running).
  virtual void close_all() = 0;

  // Receive path (reactor thread): a frame from `frame.src()`.
  void deliver(Frame&& frame);
  // The connection to `peer` is gone: fail its rpcs, tell the handler.
  void peer_down(NodeId peer, const Error& why);

  Reactor& reactor() { return reactor_; }

 private:
  struct PendingRpc;
  void complete(std::uint64_t request_id, Result<Frame> result);
  void shutdown_here();

  NodeId self_;
  Reactor& reactor_;
  Dispatcher dispatcher_;
  PeerDownHandler peer_down_handler_;
  std::unordered_map<std::uint64_t, PendingRpc*> pending_;
  std::uint64_t next_request_id_ = 1;
  std::size_t handlers_running_ = 0;
  bool shut_down_ = false;
};

}  // namespace ssi::rdma
