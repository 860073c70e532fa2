// tcp backend: one stream per peer pair over non-blocking sockets on the
// reactor's epoll. Handshake: the dialer sends a hello (its NodeId, our
// protocol version in the header, a nonce); the acceptor answers with its
// own hello (nonce + proof of the machine secret), the dialer with its
// proof (hello_auth.hpp), after which frames flow both ways. If both nodes dial each other at once,
// the stream dialed by the lower NodeId wins on both sides: the lower node
// refuses the other, the higher node drops its own (nothing was sent on it,
// since frames wait for the handshake).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/operations.hpp>
#include <optional>
#include <set>
#include <unordered_map>

#include "base/log.hpp"
#include "base/rate_limited_log.hpp"
#include "tcp_backend.hpp"
#include "hello_auth.hpp"
#include "rdma/redial.hpp"
#include "tcp_connection.hpp"
#include "rdma/transport_base.hpp"

namespace ssi::rdma {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kHelloTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxUnidentified = 64;
constexpr int kAcceptsPerWakeup = 16;
constexpr std::uint32_t kUnknownNode = 0xffffffff;

struct NoLock {
  void lock() {}
  void unlock() {}
};

class TcpTransport final : public TransportBase {
 public:
  TcpTransport(const TransportConfig& config, Reactor& reactor)
      : TransportBase(config.self, reactor), connect_timeout_(config.connect_timeout), secret_(config.secret) {}
  ~TcpTransport() override { shutdown(); }

  Result<void> listen(const Address& where) {
    SSI_ASSIGN_OR_RETURN(auto l, tcp_listen(where.empty() ? "tcp:127.0.0.1:0" : where, "tcp"));
    listener_ = std::move(l.first);
    address_ = std::move(l.second);
    return reactor().watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_some(); });
  }

  std::string_view kind() const override { return "tcp"; }
  Address local_address() const override { return address_; }

  Result<void> connect(NodeId peer, const Address& address) override {
    if (is_shut_down()) return make_error(Errc::kShutdown, "transport is shut down");
    if (peer == self()) return make_error(Errc::kInvalidArgument, "connect to self");
    SSI_ASSIGN_OR_RETURN(sockaddr_in sa, parse_inet_address(address, "tcp"));
    return redial_until_established(
        connect_timeout_,
        {.dial = [&]() -> Result<void> { return conns_.count(peer) ? ok() : dial(peer, sa, address); },
         .wait = [&](Clock::time_point deadline) { return wait_established(peer, deadline); },
         .abandon = [&] { abandon_dial(peer); },
         .shut_down = [&] { return is_shut_down(); }});
  }

 protected:
  Result<void> send_frame(NodeId peer, Frame&& frame) override {
    auto it = conns_.find(peer);
    if (it == conns_.end())
      return make_error(Errc::kDisconnected, fmt::format("not connected to node {}", peer));
    if (!it->second->established) {
      if (auto r = wait_established(peer, Clock::now() + connect_timeout_); !r.ok())
        return make_error(Errc::kDisconnected,
                          fmt::format("no connection to node {}: {}", peer, r.error().to_string()));
    }
    return conns_.at(peer)->send(frame);
  }

  void close_all() override {
    reactor().unwatch(listener_.get());
    listener_.reset();
    auto why = make_error(Errc::kShutdown, fmt::format("node {} shut down", self()));
    for (auto& c : std::vector(unidentified_.begin(), unidentified_.end())) c->close(why, false);
    for (auto& c : std::vector(rivals_.begin(), rivals_.end())) c->close(why, false);
    for (auto& [peer, c] : std::unordered_map(conns_)) c->close(why, false);
    unidentified_.clear();
    rivals_.clear();
    conns_.clear();
    changed_.notify_all();
  }

 private:
  using ConnPtr = std::shared_ptr<TcpConnection>;

  Result<void> dial(NodeId peer, const sockaddr_in& sa, const Address& address) {
    auto dialing = start_dial(sa, fmt::format("connect to node {} at {}", peer, address));
    if (!dialing.ok()) {
      connect_errors_[peer] = dialing.error();
      return ok();  // wait_established() reports it
    }
    auto c = std::make_shared<TcpConnection>(std::move(dialing->fd), reactor(), dialing->in_progress,
                                             fmt::format("node {} ({})", peer, address));
    c->peer = peer;
    c->outbound = c->identified = true;
    conns_[peer] = c;
    connect_errors_.erase(peer);
    c->dialer_nonce = random_nonce();
    SSI_TRY(start(c));
    return c->send(hello(peer, challenge_payload(c->dialer_nonce, nullptr)));
  }

  // connect() gave up: a dial still in progress must not linger.
  void abandon_dial(NodeId peer) {
    auto it = conns_.find(peer);
    if (it == conns_.end() || it->second->established) return;
    ConnPtr c = it->second;
    conns_.erase(it);
    c->close(make_error(Errc::kTimeout, "connect gave up"), false);
  }

  Result<void> wait_established(NodeId peer, Clock::time_point deadline) {
    NoLock lock;
    auto done = [&] {
      auto it = conns_.find(peer);
      return is_shut_down() || it == conns_.end() || it->second->established;
    };
    if (!changed_.wait_until(lock, deadline, done))
      return make_error(Errc::kTimeout, fmt::format("no handshake with node {} in time", peer));
    if (is_shut_down()) return make_error(Errc::kShutdown, "transport is shut down");
    if (conns_.count(peer)) return ok();
    auto e = connect_errors_.find(peer);
    return e != connect_errors_.end() ? e->second
                                      : make_error(Errc::kDisconnected, fmt::format("node {} went away", peer));
  }

  Frame hello(NodeId to, Payload payload = {}) const {
    Frame f;
    f.header.type = kFrameHello;
    f.header.src = self().value();
    f.header.dst = to.value();
    f.payload = std::move(payload);
    f.header.payload_len = static_cast<std::uint32_t>(f.payload.size());
    return f;
  }

  AuthTranscript transcript(const TcpConnection& c) const { return c.transcript("tcp", self()); }

  Result<void> start(const ConnPtr& c) {
    return c->start([this](const ConnPtr& conn, Frame&& f) { on_frame(conn, std::move(f)); },
                    [this](const ConnPtr& conn, const Error& why) { on_closed(conn, why); });
  }

  void accept_some() {
    for (int i = 0; i < kAcceptsPerWakeup && listener_; ++i) {
      auto accepted = accept_one(listener_.get());
      if (!accepted) return;
      if (unidentified_.size() >= kMaxUnidentified) {
        refusals_.warn(fmt::format("node {}: refusing connection: {} handshakes pending", self(), kMaxUnidentified));
        continue;
      }
      auto c = std::make_shared<TcpConnection>(std::move(accepted->first), reactor(), false, accepted->second);
      // A dialer speaking another version gets our hello, so its error
      // names both versions instead of "connection closed".
      c->on_bad_input = [this](TcpConnection& conn, const Error& why) {
        if (!conn.identified && why.code == Errc::kVersionMismatch) (void)conn.send(hello(NodeId{kUnknownNode}));
      };
      if (!start(c).ok()) continue;
      unidentified_.insert(c);
      // A connection that does not complete the handshake in time is dropped.
      close_unless_settled(reactor(), c, changed_, kHelloTimeout,
                           [this](const TcpConnection& c) { return c.established || is_shut_down(); },
                           "did not authenticate in time");
    }
  }

  void on_frame(const ConnPtr& c, Frame&& f) {
    const FrameHeader& h = f.header;
    auto protocol_error = [&](std::string what) {
      c->close(make_error(Errc::kProtocol, fmt::format("{}: {}", c->description(), what)));
    };
    if (h.type == kFrameHello && !c->outbound) {
      if (c->challenged || c->established) return protocol_error("unexpected hello");
      if (h.dst != self().value())
        return protocol_error(fmt::format("hello for node {} reached node {}", h.dst, self()));
      auto challenge = parse_challenge(f.payload.bytes(), false);
      if (!challenge) return protocol_error("hello without a challenge");
      return answer_hello(c, NodeId{h.src}, challenge->nonce);
    }
    if (h.type == kFrameHello) {
      if (c->established) return protocol_error("unexpected hello");
      if (h.src != c->peer.value())
        return protocol_error(fmt::format("dialed node {} but node {} answered", c->peer, h.src));
      auto challenge = parse_challenge(f.payload.bytes(), true);
      if (!challenge) return protocol_error("hello without a proof");
      c->acceptor_nonce = challenge->nonce;
      if (!secret_.check(AuthRole::kAcceptor, transcript(*c), challenge->proof))
        return protocol_error("failed authentication (not a node of this machine)");
      Frame proof;
      proof.header.type = kFrameHelloProof;
      proof.header.src = self().value();
      proof.header.dst = c->peer.value();
      Proof mine = secret_.prove(AuthRole::kDialer, transcript(*c));
      proof.payload = Payload::copy_of(mine);
      proof.header.payload_len = kProofSize;
      if (!c->send(proof).ok()) return;  // on_closed already ran
      c->established = true;
      changed_.notify_all();
      return;
    }
    if (h.type == kFrameHelloProof) {
      if (c->outbound || !c->challenged || c->established) return protocol_error("unexpected hello proof");
      if (!secret_.check(AuthRole::kDialer, transcript(*c), f.payload.bytes()))
        return protocol_error(fmt::format("claims to be node {} but failed authentication", c->peer));
      if (rivals_.erase(c) && !take_slot(c)) return;
      c->established = true;
      changed_.notify_all();
      return;
    }
    if (!c->established) return protocol_error(fmt::format("frame type {:#06x} before the handshake", h.type));
    if (h.src != c->peer.value() || h.dst != self().value())
      return protocol_error(fmt::format("frame {} -> {} on the stream of node {}", h.src, h.dst, c->peer));
    deliver(std::move(f));
  }

  // The dialer's claim decides which stream a pair keeps (as with no
  // authentication); the slot is held for the claim until the proof
  // arrives, so our own connect() waits for it instead of dialing too.
  void answer_hello(const ConnPtr& c, NodeId peer, const Nonce& dialer_nonce) {
    unidentified_.erase(c);
    std::size_t unproven = 0;
    for (auto& [id, conn] : conns_) unproven += !conn->outbound && !conn->established;
    unproven += rivals_.size();
    if (unproven >= kMaxUnidentified)
      return c->close(make_error(Errc::kProtocol, fmt::format("{} claims pending", unproven)));
    if (auto it = conns_.find(peer); it != conns_.end()) {
      ConnPtr old = it->second;
      if (old->established) return refuse_connected(c, peer);
      if (old->outbound && self() < peer) {
        // Simultaneous dial: ours (lower id) wins; this one never gets a hello.
        c->close(make_error(Errc::kDisconnected, "duplicate stream"), false);
        changed_.notify_all();
        return;
      }
      if (old->outbound) {
        // Simultaneous dial, theirs wins: our own dial is finished.
        conns_.erase(it);
        old->close(make_error(Errc::kDisconnected, fmt::format("node {} opened a new stream", peer)), false);
      }
    }
    c->peer = peer;
    c->identified = c->challenged = true;
    c->dialer_nonce = dialer_nonce;
    c->acceptor_nonce = random_nonce();
    // Two unproven claims to one node (a node that dialed again, or someone
    // posing as it): neither may push the other out before it proves
    // itself, so the newer one waits aside and the first to prove wins.
    if (conns_.count(peer)) {
      rivals_.insert(c);
    } else {
      conns_[peer] = c;
    }
    Proof proof = secret_.prove(AuthRole::kAcceptor, transcript(*c));
    (void)c->send(hello(peer, challenge_payload(c->acceptor_nonce, &proof)));  // a failure closed it
  }

  void refuse_connected(const ConnPtr& c, NodeId peer) {
    refusals_.warn(fmt::format("node {}: refused {}: claims node {}, which is already connected", self(),
                               c->description(), peer));
    c->close(make_error(Errc::kProtocol, "node already connected"), false);
  }

  // A rival claim proved itself: it takes the node's slot unless the stream
  // there is established already (then the rival is refused).
  bool take_slot(const ConnPtr& c) {
    auto it = conns_.find(c->peer);
    if (it != conns_.end() && it->second->established) {
      refuse_connected(c, c->peer);
      return false;
    }
    if (it != conns_.end()) {
      ConnPtr old = it->second;
      conns_.erase(it);
      old->close(make_error(Errc::kDisconnected, fmt::format("node {} opened a new stream", c->peer)), false);
    }
    conns_[c->peer] = c;
    return true;
  }

  void on_closed(const ConnPtr& c, const Error& why) {
    if (rivals_.erase(c)) {
      refusals_.warn(fmt::format("node {}: dropped {} before it authenticated: {}", self(), c->description(),
                                 why.to_string()));
      changed_.notify_all();
      return;
    }
    if (unidentified_.erase(c)) {
      refusals_.warn(fmt::format("node {}: dropped {} before it authenticated: {}", self(), c->description(),
                                 why.to_string()));
      changed_.notify_all();
      return;
    }
    auto it = conns_.find(c->peer);
    if (it == conns_.end() || it->second != c) return;
    conns_.erase(it);
    if (c->established) {
      log::get("rdma")->warn("node {}: lost node {}: {}", self(), c->peer, why.to_string());
      peer_down(c->peer, why);
    } else if (c->outbound) {
      connect_errors_[c->peer] = why;
    } else {
      // An accepted claim that did not prove itself: our connect() may dial.
      refusals_.warn(fmt::format("node {}: dropped {} before it authenticated: {}", self(), c->description(),
                                 why.to_string()));
    }
    changed_.notify_all();
  }

  std::chrono::milliseconds connect_timeout_;
  MachineSecret secret_;
  log::RateLimitedLog refusals_{"rdma"};  // what outsiders can make us say
  UniqueFd listener_;
  Address address_;
  std::unordered_map<NodeId, ConnPtr> conns_;  // the one stream per peer
  std::set<ConnPtr> unidentified_;             // accepted, no hello yet
  std::set<ConnPtr> rivals_;  // a second unproven claim to a node whose slot holds one
  std::unordered_map<NodeId, Error> connect_errors_;
  boost::fibers::condition_variable_any changed_;  // a handshake ended
};

}  // namespace

Result<std::unique_ptr<Transport>> make_tcp_transport(const TransportConfig& config, Reactor& reactor) {
  auto t = std::make_unique<TcpTransport>(config, reactor);
  SSI_TRY(t->listen(config.listen));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ssi::rdma
