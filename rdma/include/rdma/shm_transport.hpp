// The shm backend: nodes on one host exchange frames through ShmChannels
// (one SPSC ring per direction per peer pair in a shared memfd).
//
// Send: the 64-byte header and the payload are copied straight into the
// ring slot (the borrowed page is read once, no intermediate buffer); a
// full ring suspends the sending fiber until the peer frees a slot.
// Receive: each channel's doorbell eventfd is watched by the Reactor; its
// fiber drains the ring, copies each payload into an owned buffer (the slot
// must be freed in order, and handlers may keep frames arbitrarily long),
// frees the slot and delivers. It then polls the ring for ShmOptions::spin
// and only then announces it sleeps, so the peer rings the doorbell (a
// syscall) only when we are really idle.
// Peer death: the rendezvous socket closes (EPOLLHUP / EOF).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/mutex.hpp>

#include "base/rate_limited_log.hpp"
#include "rdma/shm_channel.hpp"
#include "rdma/transport_base.hpp"

namespace ssi::rdma {

struct ShmOptions {
  std::string name;  // listener name (address "shm:<name>"); empty: unique
  ShmRing::Layout layout;
  // After a channel goes quiet, keep polling its ring (yielding to other
  // fibers) this long before announcing sleep. While we poll, the peer needs
  // no doorbell syscall and we no epoll wake-up: worth it only when the peer
  // runs on another CPU (there a wake-up costs 15-40 us); 0 = sleep at once.
  std::chrono::microseconds spin{0};
  // Connections must prove it (shm_channel.hpp).
  MachineSecret secret{};
};

class ShmTransport final : public TransportBase {
 public:
  static Result<std::unique_ptr<ShmTransport>> create(NodeId self, Reactor& reactor,
                                                      ShmOptions options = {});
  ~ShmTransport() override;

  std::string_view kind() const override { return "shm"; }
  Address local_address() const override { return address_; }
  Result<void> connect(NodeId peer, const Address& address) override;
  // True once a channel to `peer` exists (the accepting side learns of a
  // connection when its reactor runs the listener).
  bool connected(NodeId peer) const;

 protected:
  Result<void> send_frame(NodeId peer, Frame&& frame) override;
  void close_all() override;

 private:
  struct Conn {
    ShmChannel channel;
    bool closed = false;
  };
  // Every channel to one peer: normally one; two if both sides connected at
  // once. We send on the first and receive on all, so each direction keeps
  // its order.
  struct Peer {
    std::vector<std::shared_ptr<Conn>> conns;
    boost::fibers::mutex mutex;
    boost::fibers::condition_variable space;  // a tx ring may have room again
  };

  ShmTransport(NodeId self, Reactor& reactor, ShmListener listener, ShmOptions options);
  Result<void> start();
  void on_listener_ready();
  // An accepted socket's hello arrived (or it closed): handshake, add.
  void finish_accept(int fd);
  void expire_accept(int fd, const std::shared_ptr<UniqueFd>& sock);
  Result<void> add_channel(ShmChannel channel);
  void on_bell(NodeId peer, const std::weak_ptr<Conn>& weak);
  void on_socket(NodeId peer, const std::weak_ptr<Conn>& weak);
  // Drains one rx ring; an error means the peer sent garbage.
  Result<std::size_t> drain(Conn& conn);  // frames delivered
  void drop_peer(NodeId peer, const Error& why);
  void unwatch(Conn& conn);

  ShmListener listener_;
  Address address_;
  ShmOptions options_;
  std::unordered_map<NodeId, std::shared_ptr<Peer>> peers_;  // shared: waiting senders hold one
  // Accepted sockets whose hello has not arrived: the reactor watches them,
  // nothing waits for them (an idle client costs nobody time).
  std::unordered_map<int, std::shared_ptr<UniqueFd>> pending_;
  boost::fibers::condition_variable_any pending_changed_;
  log::RateLimitedLog refusals_{"rdma"};  // what outsiders can make us say
  bool closed_ = false;
};

}  // namespace ssi::rdma
