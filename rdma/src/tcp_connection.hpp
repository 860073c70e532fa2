// One TCP stream to a peer: non-blocking socket on the reactor, frames out
// with sendmsg scatter-gather (header + payload in place; only what the
// kernel did not take is copied into the queue), frames in through the
// StreamDecoder. Reactor thread only.
#pragma once

#include <netinet/in.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include <boost/fiber/condition_variable.hpp>

#include "base/secret.hpp"
#include "rdma/codec.hpp"
#include "rdma/reactor.hpp"
#include "base/unique_fd.hpp"
#include "rdma/transport.hpp"

namespace ssi::rdma {

// Socket helpers shared by the backends that speak TCP (tcp, and verbs for
// its connection setup). Addresses are "<scheme>:HOST:PORT", HOST an IPv4
// address or "localhost".
Result<sockaddr_in> parse_inet_address(const Address& address, std::string_view scheme);
Result<UniqueFd> tcp_socket();  // non-blocking, close-on-exec
void set_nodelay(int fd);
// A listening non-blocking socket on `where` and its actual address
// (port 0 = any) in the same scheme.
Result<std::pair<UniqueFd, Address>> tcp_listen(const Address& where, std::string_view scheme);
// A non-blocking connect() to `sa`, started: the socket and whether the
// connect is still in progress. An immediate failure is an Error with errno.
struct Dialing {
  UniqueFd fd;
  bool in_progress = false;
};
Result<Dialing> start_dial(const sockaddr_in& sa, const std::string& what);
// The next pending connection on the non-blocking `listener` and the
// dialer's "HOST:PORT"; nullopt when none is left (other errors are logged).
std::optional<std::pair<UniqueFd, std::string>> accept_one(int listener);

class TcpConnection;
// For an accepted stream that must identify itself: closes it with
// kTimeout "<description> <what>" unless `settled(conn)` holds within
// `timeout`, re-checked whenever `changed` is notified. The watcher fiber
// ends as soon as it is settled, so notify `changed` on shutdown.
void close_unless_settled(Reactor& reactor, const std::shared_ptr<TcpConnection>& conn,
                          boost::fibers::condition_variable_any& changed, std::chrono::milliseconds timeout,
                          std::function<bool(const TcpConnection&)> settled, std::string what);

class TcpConnection : public std::enable_shared_from_this<TcpConnection> {
 public:
  using FrameFn = std::function<void(const std::shared_ptr<TcpConnection>&, Frame&&)>;
  using CloseFn = std::function<void(const std::shared_ptr<TcpConnection>&, const Error&)>;

  // `connecting`: a non-blocking connect() is in progress on `fd`.
  TcpConnection(UniqueFd fd, Reactor& reactor, bool connecting, std::string description);
  ~TcpConnection();

  Result<void> start(FrameFn on_frame, CloseFn on_close);
  // Writes the frame (header complete) or queues the unsent part. Waits
  // while too much is queued (back-pressure), at most `kSendStallTimeout`,
  // after which the peer counts as stuck and the connection fails.
  Result<void> send(const Frame& frame);
  // Closes the socket; `on_close` runs (once) if `notify`.
  void close(const Error& why, bool notify = true);

  bool closed() const { return closed_; }
  const std::string& description() const { return description_; }

  // Owned by the transport: who is at the other end, and the handshake.
  NodeId peer{0};
  bool outbound = false;     // we dialed
  bool identified = false;   // `peer` is known
  bool established = false;  // hellos exchanged: frames may flow
  // The challenge-response (hello_auth.hpp): both nonces once known; on an
  // accepted stream, `challenged` once our hello went out (the dialer's
  // proof is due).
  Nonce dialer_nonce{};
  Nonce acceptor_nonce{};
  bool challenged = false;
  // What both sides' proofs cover on this stream; `self` is our node id.
  AuthTranscript transcript(std::string_view channel, NodeId self) const {
    NodeId dialer = outbound ? self : peer;
    NodeId acceptor = outbound ? peer : self;
    return {channel, dialer.value(), acceptor.value(), dialer_nonce, acceptor_nonce};
  }
  // Runs when the peer sent bytes we cannot decode, just before the close:
  // a last chance to tell it why (e.g. our hello with our version).
  std::function<void(TcpConnection&, const Error&)> on_bad_input;

 private:
  void on_ready(std::uint32_t events);
  void read_some();
  void flush();
  Result<void> set_interest(bool want_out);
  void fail_errno(const char* what, int err);

  UniqueFd fd_;
  Reactor& reactor_;
  bool connecting_;
  std::string description_;
  FrameFn on_frame_;
  CloseFn on_close_;
  StreamDecoder decoder_;
  std::deque<std::vector<std::byte>> queue_;  // unsent bytes, in order
  std::size_t queue_head_offset_ = 0;         // bytes of queue_.front() already sent
  std::size_t queued_bytes_ = 0;
  bool want_out_ = false;
  bool closed_ = false;
  std::optional<Error> error_;
  boost::fibers::condition_variable_any drained_;
};

}  // namespace ssi::rdma
