// One shm connection between two processes on a host: a memfd holding one
// ShmRing per direction, one eventfd doorbell per side, and the Unix socket
// they were passed over, kept open as the liveness channel (the peer's death
// closes it: EPOLLHUP / read() == 0).
//
// Rendezvous: the acceptor listens on the abstract Unix socket
// "@ssi-shm-<name>" (SOCK_SEQPACKET). The connector creates every shared
// object, sends a hello carrying the memfd and both eventfds (SCM_RIGHTS),
// and may use the rings at once; the acceptor validates the hello and sends
// an ack (its node id) or a nack and closes. Nothing blocks on the peer's
// event loop, so two nodes on one reactor thread can connect to each other.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "base/ids.hpp"
#include "base/result.hpp"
#include "base/secret.hpp"
#include "base/unique_fd.hpp"
#include "rdma/shm_memory.hpp"
#include "rdma/shm_ring.hpp"

namespace ssi::rdma {

class ShmChannel {
 public:
  // Connects to the listener called `name`, expecting node `peer` there.
  // The acceptor's ack must prove `secret` too (on_socket_event()).
  static Result<ShmChannel> connect(std::string_view name, NodeId self, NodeId peer,
                                    ShmRing::Layout layout = {}, const MachineSecret& secret = {});

  NodeId peer() const { return peer_; }
  bool initiated_here() const { return initiator_; }
  ShmRing& tx() { return tx_; }
  ShmRing& rx() { return rx_; }
  // Rung by the peer when data arrives or tx space frees; watch it (EPOLLIN).
  const Doorbell& bell() const { return my_bell_; }
  Result<void> ring_peer() const { return peer_bell_.ring(); }
  // Watch for EPOLLIN|EPOLLRDHUP; then call on_socket_event().
  int socket_fd() const { return sock_.get(); }
  // Handles the peer's ack, or reports why the peer is gone (kDisconnected,
  // or the peer's rejection).
  Result<void> on_socket_event();
  bool acknowledged() const { return acked_; }

 private:
  friend class ShmListener;
  SharedMemory mem_;
  ShmRing tx_;
  ShmRing rx_;
  Doorbell my_bell_;
  Doorbell peer_bell_;
  UniqueFd sock_;
  NodeId self_{};
  NodeId peer_{};
  bool initiator_ = false;
  bool acked_ = false;
  Proof expected_ack_{};
};

class ShmListener {
 public:
  // Listens on "@ssi-shm-<name>"; name must be unique on the host.
  // Connectors must prove `secret`, come from this user, and use a fresh nonce.
  static Result<ShmListener> listen(std::string name, const MachineSecret& secret = {});
  // A name unlikely to clash: pid + a counter + a random suffix.
  static std::string unique_name();

  const std::string& name() const { return name_; }
  int fd() const { return fd_.get(); }  // readable => a connection is pending
  // Accepts one pending connection; nullopt if none is pending. A bad hello
  // is answered with a nack and reported as an error (listener stays usable).
  // Blocks up to `hello_wait` for the hello: for tests and tools, never on
  // an event loop (there: accept_socket(), wait for readability, handshake()).
  Result<std::optional<ShmChannel>> accept(NodeId self,
                                           std::chrono::milliseconds hello_wait =
                                               std::chrono::seconds(1));
  // A pending connection's socket (non-blocking), or nullopt: none pending,
  // or an error, then stored in *error.
  std::optional<UniqueFd> accept_socket(Error* error);
  // Validates the hello waiting on `sock` (kTimeout-free: EAGAIN is an error
  // with errno EAGAIN) and answers ack, or nack and the error.
  Result<ShmChannel> handshake(UniqueFd sock, NodeId self);

 private:
  UniqueFd fd_;
  std::string name_;
  MachineSecret secret_;
  std::set<Nonce> seen_;  // every accepted connector nonce: a replay is refused
};

}  // namespace ssi::rdma
