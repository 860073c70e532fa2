// The verbs backend's connection management: the TCP side channel (setup
// handshake, its messages in verbs_setup.hpp, + liveness), the peer table, and the completion-queue fiber.
// The data path of one connection is VerbsChannel (verbs_channel.cpp).
#include "rdma/verbs_transport.hpp"

#include <sys/epoll.h>

#include <array>
#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/operations.hpp>
#include <set>
#include <unordered_map>

#include "base/log.hpp"
#include "hello_auth.hpp"
#include "rdma/redial.hpp"
#include "tcp_connection.hpp"
#include "verbs_backend.hpp"
#include "verbs_channel.hpp"
#include "verbs_setup.hpp"
#include "rdma/verbs_device.hpp"

namespace ssi::rdma {
namespace {

using Clock = std::chrono::steady_clock;
using ConnPtr = std::shared_ptr<TcpConnection>;
constexpr auto kHelloTimeout = std::chrono::seconds(5);
constexpr std::size_t kCompletionBatch = 32;
// Handler fibers alive before the CQ fiber stops taking completions (and so
// returning credits): back-pressure on a peer sending faster than we handle.
constexpr std::size_t kMaxHandlersRunning = 256;
constexpr int kAcceptsPerWakeup = 16;
constexpr std::size_t kMaxUnidentified = 64;

struct NoLock {
  void lock() {}
  void unlock() {}
};

class VerbsTransportImpl final : public VerbsTransport {
 public:
  VerbsTransportImpl(const TransportConfig& config, std::unique_ptr<VerbsFabric> fabric, Reactor& reactor,
                     VerbsTransportOptions options)
      : VerbsTransport(config.self, reactor),
        connect_timeout_(config.connect_timeout),
        secret_(config.secret),
        options_(options),
        fabric_(std::move(fabric)),
        table_(*fabric_) {}
  ~VerbsTransportImpl() override { shutdown(); }

  Result<void> start(const Address& where) {
    SSI_ASSIGN_OR_RETURN(auto l, tcp_listen(where.empty() ? "verbs:127.0.0.1:0" : where, "verbs"));
    listener_ = std::move(l.first);
    address_ = std::move(l.second);
    SSI_TRY(reactor().watch(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_some(); }));
    SSI_TRY(fabric_->arm());
    return reactor().watch(fabric_->completion_fd(), EPOLLIN, [this](std::uint32_t) { on_cq_ready(); });
  }

  Address local_address() const override { return address_; }

  Result<void> connect(NodeId peer, const Address& address) override {
    if (is_shut_down()) return make_error(Errc::kShutdown, "transport is shut down");
    if (peer == self()) return make_error(Errc::kInvalidArgument, "connect to self");
    SSI_ASSIGN_OR_RETURN(sockaddr_in sa, parse_inet_address(address, "verbs"));
    auto r = redial_until_established(
        connect_timeout_,
        {.dial = [&]() -> Result<void> { return peers_.count(peer) ? ok() : dial(peer, sa, address); },
         .wait = [&](Clock::time_point deadline) { return wait_established(peer, deadline); },
         .abandon = [&] {
           if (auto it = peers_.find(peer); it != peers_.end() && !it->second->established)
             drop(peer, make_error(Errc::kTimeout, "connect gave up"));
         },
         .shut_down = [&] { return is_shut_down(); }});
    if (r.ok() || is_shut_down()) return r;
    return Error{r.error().code, fmt::format("verbs connect to node {} at {}: {}", peer, address,
                                             r.error().message), r.error().sys_errno};
  }

  Result<void> register_memory(std::span<std::byte> region) override {
    SSI_ASSIGN_OR_RETURN(auto keys, table_.add(region));
    (void)keys;
    return ok();
  }

  std::optional<std::uint32_t> qpn_of(NodeId peer) const override {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return std::nullopt;
    return it->second->channel->qpn();
  }

  Result<void> send_raw(NodeId peer, std::span<const std::byte> bytes) override {
    SSI_ASSIGN_OR_RETURN(auto p, established(peer));
    return p->channel->send_raw(bytes);
  }

 protected:
  Result<void> send_frame(NodeId peer, Frame&& frame) override {
    SSI_ASSIGN_OR_RETURN(auto p, established(peer));
    auto ch = p->channel;  // alive while we wait for credit
    auto r = ch->send(frame, options_.send_stall);
    if (!r.ok() && !ch->closed()) drop(peer, r.error(), ch.get());
    return r;
  }

  void close_all() override {
    reactor().unwatch(listener_.get());
    listener_.reset();
    reactor().unwatch(fabric_->completion_fd());
    auto why = make_error(Errc::kShutdown, fmt::format("node {} shut down", self()));
    for (auto& c : std::set(unidentified_)) c->close(why, false);
    for (auto& [peer, p] : std::unordered_map(peers_)) {
      p->channel->close(why);
      p->side->close(why, false);
    }
    unidentified_.clear();
    peers_.clear();
    channels_.clear();
    changed_.notify_all();
  }

 private:
  struct Peer {
    ConnPtr side;  // setup handshake, then liveness
    std::shared_ptr<VerbsChannel> channel;
    bool established = false;
    bool authenticated = false;  // the peer proved the secret: its traffic counts
  };
  using PeerPtr = std::shared_ptr<Peer>;

  Result<std::shared_ptr<VerbsChannel>> new_channel(NodeId peer) {
    // Each connection may have this many completions outstanding at once.
    const std::uint64_t per_peer = 5ull * options_.buffers + 5;
    if ((channels_.size() + 1) * per_peer > fabric_->cq_depth())
      return make_error(Errc::kUnsupported, fmt::format("verbs: the CQ of {} entries has no room for node {} "
                                                        "({} per peer)", fabric_->cq_depth(), peer, per_peer));
    SSI_ASSIGN_OR_RETURN(auto ch, VerbsChannel::create(*fabric_, table_, next_conn_++, self(), peer, options_.buffers));
    std::shared_ptr<VerbsChannel> shared = std::move(ch);
    channels_[shared->conn()] = shared;
    return shared;
  }

  Frame hello(NodeId to, SetupStage stage, const std::optional<VerbsConnInfo>& info, Payload auth = {}) const {
    return setup_frame(self(), to, stage, info, std::move(auth));
  }

  Result<void> dial(NodeId peer, const sockaddr_in& sa, const Address& address) {
    auto dialing = start_dial(sa, fmt::format("connect to node {} at {}", peer, address));
    if (!dialing.ok()) {
      connect_errors_[peer] = dialing.error();
      return ok();  // wait_established() reports it
    }
    SSI_ASSIGN_OR_RETURN(auto ch, new_channel(peer));
    auto c = std::make_shared<TcpConnection>(std::move(dialing->fd), reactor(), dialing->in_progress,
                                             fmt::format("node {} ({})", peer, address));
    c->peer = peer;
    c->outbound = c->identified = true;
    peers_[peer] = std::make_shared<Peer>(Peer{c, ch});
    connect_errors_.erase(peer);
    c->dialer_nonce = random_nonce();
    SSI_TRY(start(c));
    return c->send(hello(peer, kOffer, ch->local_info(), challenge_payload(c->dialer_nonce, nullptr)));
  }

  Result<PeerPtr> established(NodeId peer) {
    auto it = peers_.find(peer);
    if (it == peers_.end()) return make_error(Errc::kDisconnected, fmt::format("not connected to node {}", peer));
    if (!it->second->established) {
      if (auto r = wait_established(peer, Clock::now() + connect_timeout_); !r.ok())
        return make_error(Errc::kDisconnected, fmt::format("no connection to node {}: {}", peer, r.error().to_string()));
    }
    return peers_.at(peer);
  }

  Result<void> wait_established(NodeId peer, Clock::time_point deadline) {
    NoLock lock;
    auto done = [&] {
      auto it = peers_.find(peer);
      return is_shut_down() || it == peers_.end() || it->second->established;
    };
    if (!changed_.wait_until(lock, deadline, done))
      return make_error(Errc::kTimeout, fmt::format("no verbs handshake with node {} in time", peer));
    if (is_shut_down()) return make_error(Errc::kShutdown, "transport is shut down");
    if (peers_.count(peer)) return ok();
    auto e = connect_errors_.find(peer);
    return e != connect_errors_.end() ? e->second
                                      : make_error(Errc::kDisconnected, fmt::format("node {} went away", peer));
  }

  Result<void> start(const ConnPtr& c) {
    return c->start([this](const ConnPtr& conn, Frame&& f) { on_side_frame(conn, std::move(f)); },
                    [this](const ConnPtr& conn, const Error& why) { on_side_closed(conn, why); });
  }

  void accept_some() {
    for (int i = 0; i < kAcceptsPerWakeup && listener_; ++i) {
      auto accepted = accept_one(listener_.get());
      if (!accepted) return;
      if (unidentified_.size() >= kMaxUnidentified) {
        log::get("rdma")->warn("node {}: refusing a verbs setup connection: {} pending", self(), kMaxUnidentified);
        continue;
      }
      auto c = std::make_shared<TcpConnection>(std::move(accepted->first), reactor(), false,
                                               "verbs setup connection from " + accepted->second);
      if (!start(c).ok()) continue;
      unidentified_.insert(c);
      close_unless_settled(reactor(), c, changed_, kHelloTimeout,
                           [this](const TcpConnection& c) { return c.established || is_shut_down(); },
                           "did not authenticate in time");
    }
  }

  void on_side_frame(const ConnPtr& c, Frame&& f) {
    const FrameHeader& h = f.header;
    auto fail = [&](const std::string& what) {
      c->close(make_error(Errc::kProtocol, fmt::format("{}: {}", c->description(), what)));
    };
    if (h.type != kFrameHello) return fail(fmt::format("frame type {:#06x} on the setup channel", h.type));
    auto it = c->identified ? peers_.find(c->peer) : peers_.end();
    PeerPtr p = it != peers_.end() && it->second->side == c ? it->second : nullptr;
    auto info = [&](std::size_t skip) { return setup_info(f, skip); };
    switch (h.arg0) {
      case kOffer: {
        if (c->identified || h.dst != self().value()) return fail("unexpected offer");
        auto challenge = parse_challenge(f.payload.bytes(), false);
        auto remote = info(kNonceSize);
        if (!challenge || !remote.ok()) return fail(remote.ok() ? "offer without a challenge" : remote.error().message);
        c->dialer_nonce = challenge->nonce;
        return accept_offer(c, NodeId{h.src}, *remote);
      }
      case kAnswer: {
        if (!p || !c->outbound || p->established || h.src != c->peer.value()) return fail("unexpected answer");
        auto challenge = parse_challenge(f.payload.bytes(), true);
        auto remote = info(kNonceSize + kProofSize);
        if (!challenge || !remote.ok()) return fail(remote.ok() ? "answer without a proof" : remote.error().message);
        c->acceptor_nonce = challenge->nonce;
        if (!secret_.check(AuthRole::kAcceptor, transcript(*c), challenge->proof))
          return fail("failed authentication (not a node of this machine)");
        p->authenticated = true;
        if (auto r = p->channel->connect(*remote); !r.ok()) return c->close(r.error());
        Proof proof = secret_.prove(AuthRole::kDialer, transcript(*c));
        (void)c->send(hello(c->peer, kReady, std::nullopt, Payload::copy_of(proof)));  // failure: closed
        return;
      }
      case kReady:
        if (!p || c->outbound || p->established) return fail("unexpected ready");
        if (!secret_.check(AuthRole::kDialer, transcript(*c), f.payload.bytes()))
          return fail(fmt::format("claims to be node {} but failed authentication", c->peer));
        if (!c->send(hello(c->peer, kConfirmed, std::nullopt)).ok()) return;  // closed: on_side_closed ran
        p->established = p->authenticated = c->established = true;
        changed_.notify_all();
        return;
      case kConfirmed:
        if (!p || !c->outbound || p->established) return fail("unexpected confirmation");
        p->established = true;
        changed_.notify_all();
        return;
      default:
        return fail(fmt::format("unknown setup stage {}", h.arg0));
    }
  }

  void accept_offer(const ConnPtr& c, NodeId peer, const VerbsConnInfo& remote) {
    unidentified_.erase(c);
    if (auto it = peers_.find(peer); it != peers_.end()) {
      if (it->second->established) {
        log::get("rdma")->warn("node {}: refused {}: claims node {}, which is already connected", self(),
                               c->description(), peer);
        return c->close(make_error(Errc::kProtocol, "node already connected"), false);
      }
      if (c->outbound == false && !it->second->established && it->second->side->outbound && self() < peer) {
        // Simultaneous dial: ours (lower id) wins; the peer drops its own.
        c->close(make_error(Errc::kDisconnected, "duplicate verbs connection"), false);
        changed_.notify_all();
        return;
      }
      // Theirs wins, or the peer came back: the old connection is finished.
      drop(peer, make_error(Errc::kDisconnected, fmt::format("node {} opened a new connection", peer)));
    }
    auto ch = new_channel(peer);
    if (!ch.ok()) return c->close(ch.error());
    if (auto r = (*ch)->connect(remote); !r.ok()) {
      channels_.erase((*ch)->conn());
      return c->close(r.error());
    }
    c->peer = peer;
    c->identified = true;
    c->acceptor_nonce = random_nonce();
    peers_[peer] = std::make_shared<Peer>(Peer{c, *ch});
    Proof proof = secret_.prove(AuthRole::kAcceptor, transcript(*c));
    // A failure closes c: on_side_closed.
    (void)c->send(hello(peer, kAnswer, (*ch)->local_info(), challenge_payload(c->acceptor_nonce, &proof)));
    changed_.notify_all();
  }

  void on_side_closed(const ConnPtr& c, const Error& why) {
    if (unidentified_.erase(c)) {
      changed_.notify_all();
      return;
    }
    auto it = peers_.find(c->peer);
    if (it == peers_.end() || it->second->side != c) return;
    drop(c->peer, Error{why.code, "verbs side channel: " + why.message, why.sys_errno});
  }

  // Finishes the connection to `peer` (only if it is still `only`'s).
  void drop(NodeId peer, const Error& why, const VerbsChannel* only = nullptr) {
    auto it = peers_.find(peer);
    if (it == peers_.end() || (only && it->second->channel.get() != only)) return;
    PeerPtr p = it->second;
    peers_.erase(it);
    channels_.erase(p->channel->conn());
    p->channel->close(why);
    p->side->close(why, false);
    if (p->established) {
      log::get("rdma")->warn("node {}: lost node {}: {}", self(), peer, why.to_string());
      peer_down(peer, why);
    } else {
      connect_errors_[peer] = why;
    }
    changed_.notify_all();
  }

  // The completion-queue fiber: woken through the completion channel.
  void on_cq_ready() {
    if (is_shut_down()) return;
    if (auto r = fabric_->consume_event(); !r.ok()) log::get("rdma")->warn("verbs: {}", r.error().to_string());
    // Re-arm before draining: a completion queued after the last poll then
    // raises a new event instead of waiting unseen.
    if (auto r = fabric_->arm(); !r.ok()) return fail_all(r.error());
    std::array<Completion, kCompletionBatch> batch;
    for (;;) {
      auto n = fabric_->poll(batch);
      if (!n.ok()) return fail_all(n.error());
      for (std::size_t i = 0; i < *n; ++i) route_completion(batch[i]);
      if (*n < batch.size() || is_shut_down()) return;
      for (int spins = 0; handlers_running() > kMaxHandlersRunning && spins < 100000; ++spins)
        boost::this_fiber::yield();
    }
  }

  void route_completion(const Completion& c) {
    auto it = channels_.find(wr_conn(c.wr_id));
    if (it == channels_.end()) return;  // a connection already dropped
    std::shared_ptr<VerbsChannel> ch = it->second;
    if (auto p = peers_.find(ch->peer()); p == peers_.end() || !p->second->authenticated)
      return drop(ch->peer(), make_error(Errc::kProtocol, "verbs traffic before the handshake ended"), ch.get());
    auto r = ch->on_completion(c, [this](Frame&& f) { deliver(std::move(f)); });
    if (!r.ok()) drop(ch->peer(), r.error(), ch.get());
  }

  void fail_all(const Error& why) {
    log::get("rdma")->error("node {}: verbs completion queue failed: {}", self(), why.to_string());
    for (auto& [peer, p] : std::unordered_map(peers_)) drop(peer, why);
  }

  AuthTranscript transcript(const TcpConnection& c) const { return c.transcript("verbs", self()); }

  std::chrono::milliseconds connect_timeout_;
  MachineSecret secret_;
  VerbsTransportOptions options_;
  std::unique_ptr<VerbsFabric> fabric_;
  RegistrationTable table_;  // after fabric_: deregisters through it
  UniqueFd listener_;
  Address address_;
  std::uint32_t next_conn_ = 1;
  std::unordered_map<NodeId, PeerPtr> peers_;
  std::unordered_map<std::uint32_t, std::shared_ptr<VerbsChannel>> channels_;  // by conn id
  std::set<ConnPtr> unidentified_;  // accepted, no offer yet
  std::unordered_map<NodeId, Error> connect_errors_;
  boost::fibers::condition_variable_any changed_;  // a handshake ended or a peer went
};

}  // namespace

Result<std::unique_ptr<VerbsTransport>> VerbsTransport::create(const TransportConfig& config,
                                                               std::unique_ptr<VerbsFabric> fabric,
                                                               Reactor& reactor, VerbsTransportOptions options) {
  auto t = std::make_unique<VerbsTransportImpl>(config, std::move(fabric), reactor, options);
  SSI_TRY(t->start(config.listen));
  return std::unique_ptr<VerbsTransport>(std::move(t));
}

Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportConfig& config, Reactor& reactor) {
  auto fabric = make_ibv_fabric(VerbsOptions{});
  if (!fabric.ok())
    return Error{fabric.error().code, "verbs transport: " + fabric.error().message, fabric.error().sys_errno};
  SSI_ASSIGN_OR_RETURN(auto t, VerbsTransport::create(config, std::move(*fabric), reactor));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ssi::rdma
