#include "rdma/shm_transport.hpp"

#include <sys/epoll.h>

#include <boost/fiber/operations.hpp>

#include <fmt/format.h>

#include "base/log.hpp"
#include "rdma/codec.hpp"
#include "shm_backend.hpp"

namespace ssi::rdma {

namespace {
constexpr std::string_view kScheme = "shm:";
// A sender blocked on a full ring rechecks this often even without a wake-up,
// so a peer that stops consuming cannot park it forever unnoticed.
constexpr auto kSpaceRecheck = std::chrono::milliseconds(100);
// An accepted connection must say hello this soon; at most this many wait.
constexpr auto kHelloTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxPending = 64;
struct NoLock {
  void lock() {}
  void unlock() {}
};
}  // namespace

Result<std::unique_ptr<ShmTransport>> ShmTransport::create(NodeId self, Reactor& reactor,
                                                           ShmOptions options) {
  if (options.name.empty()) options.name = ShmListener::unique_name();
  SSI_ASSIGN_OR_RETURN(auto listener, ShmListener::listen(options.name, options.secret));
  std::unique_ptr<ShmTransport> t(
      new ShmTransport(self, reactor, std::move(listener), std::move(options)));
  SSI_TRY(t->start());
  return t;
}

ShmTransport::ShmTransport(NodeId self, Reactor& reactor, ShmListener listener,
                           ShmOptions options)
    : TransportBase(self, reactor),
      listener_(std::move(listener)),
      address_(std::string(kScheme) + listener_.name()),
      options_(std::move(options)) {}

ShmTransport::~ShmTransport() { shutdown(); }

Result<void> ShmTransport::start() {
  return reactor().watch(listener_.fd(), EPOLLIN, [this](std::uint32_t) { on_listener_ready(); });
}

void ShmTransport::on_listener_ready() {
  // Bounded by the backlog: accept_socket() answers nullopt once it is empty.
  while (!closed_) {
    Error error{Errc::kOk, {}, 0};
    auto sock = listener_.accept_socket(&error);
    if (!sock) {
      if (error.code != Errc::kOk) log::get("rdma")->warn("shm: {}", error.to_string());
      return;
    }
    if (pending_.size() >= kMaxPending) {
      refusals_.warn(fmt::format("node {}: shm: refused a connection: {} hellos pending", self(), kMaxPending));
      continue;
    }
    int fd = sock->get();
    auto shared = std::make_shared<UniqueFd>(std::move(*sock));
    if (!reactor().watch(fd, EPOLLIN | EPOLLRDHUP, [this, fd](std::uint32_t) { finish_accept(fd); }).ok()) continue;
    pending_[fd] = shared;
    reactor().spawn([this, fd, shared] { expire_accept(fd, shared); });
  }
}

void ShmTransport::finish_accept(int fd) {
  auto it = pending_.find(fd);
  if (it == pending_.end()) return;
  UniqueFd sock = std::move(*it->second);
  pending_.erase(it);
  reactor().unwatch(fd);
  pending_changed_.notify_all();
  auto ch = listener_.handshake(std::move(sock), self());
  if (!ch.ok()) {
    refusals_.warn(fmt::format("node {}: shm: refused a connection: {}", self(), ch.error().to_string()));
    return;
  }
  if (auto r = add_channel(std::move(*ch)); !r.ok())
    log::get("rdma")->warn("shm: could not set up an accepted channel: {}", r.error().to_string());
}

void ShmTransport::expire_accept(int fd, const std::shared_ptr<UniqueFd>& sock) {
  NoLock lock;
  auto settled = [&] {
    auto it = pending_.find(fd);
    return closed_ || it == pending_.end() || it->second != sock;
  };
  if (pending_changed_.wait_for(lock, kHelloTimeout, settled)) return;
  reactor().unwatch(fd);
  pending_.erase(fd);  // closes the socket
  refusals_.warn(fmt::format("node {}: shm: dropped a connection that sent no hello in {} s", self(),
                             std::chrono::duration_cast<std::chrono::seconds>(kHelloTimeout).count()));
}

Result<void> ShmTransport::connect(NodeId peer, const Address& address) {
  if (closed_) return make_error(Errc::kShutdown, "shm transport is shut down");
  if (!address.starts_with(kScheme)) {
    return make_error(Errc::kInvalidArgument, "not an shm address: '" + address + "'");
  }
  if (auto it = peers_.find(peer); it != peers_.end() && !it->second->conns.empty()) return ok();
  SSI_ASSIGN_OR_RETURN(auto ch, ShmChannel::connect(std::string_view(address).substr(kScheme.size()), self(),
                                                    peer, options_.layout, options_.secret));
  return add_channel(std::move(ch));
}

bool ShmTransport::connected(NodeId peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && !it->second->conns.empty();
}

Result<void> ShmTransport::add_channel(ShmChannel channel) {
  NodeId peer = channel.peer();
  auto conn = std::make_shared<Conn>(Conn{std::move(channel)});
  std::weak_ptr<Conn> weak = conn;
  // Edge-triggered: every doorbell write is one event, so the bell is never
  // read (one syscall less per message than draining it); its counter just
  // grows (2^64 writes would take millennia).
  SSI_TRY(reactor().watch(conn->channel.bell().fd(), EPOLLIN | EPOLLET,
                          [this, peer, weak](std::uint32_t) { on_bell(peer, weak); }));
  if (auto r = reactor().watch(conn->channel.socket_fd(), EPOLLIN | EPOLLRDHUP,
                               [this, peer, weak](std::uint32_t) { on_socket(peer, weak); });
      !r.ok()) {
    reactor().unwatch(conn->channel.bell().fd());
    return r;
  }
  auto& p = peers_[peer];
  if (!p) p = std::make_shared<Peer>();
  p->conns.push_back(std::move(conn));
  // The connector may have pushed frames before we attached (it needs no
  // ack), and it rings only after we announce sleep: look soon, in a fiber
  // of its own so connect() never waits out a poll window.
  reactor().spawn([this, peer, weak] { on_bell(peer, weak); });
  return ok();
}

Result<void> ShmTransport::send_frame(NodeId peer, Frame&& frame) {
  auto header = encode_header(frame.header);
  auto payload = frame.payload.bytes();
  for (;;) {
    auto it = peers_.find(peer);
    if (closed_ || it == peers_.end() || it->second->conns.empty()) {
      return make_error(Errc::kDisconnected, fmt::format("no shm connection to node {}", peer));
    }
    std::shared_ptr<Peer> p = it->second;
    ShmChannel& ch = p->conns.front()->channel;
    switch (ch.tx().try_push({header, payload})) {
      case ShmRing::Push::kPushed:
        if (ch.tx().take_sleeping_consumer()) return ch.ring_peer();
        return ok();
      case ShmRing::Push::kTooLarge:
        return make_error(Errc::kInvalidArgument,
                          fmt::format("frame of {} bytes exceeds the shm slot of {}",
                                      header.size() + payload.size(), ch.tx().capacity()));
      case ShmRing::Push::kFull:
        break;
    }
    if (!ch.tx().prepare_wait_for_space()) continue;  // freed meanwhile
    std::unique_lock lock(p->mutex);
    p->space.wait_for(lock, kSpaceRecheck);
  }
}

void ShmTransport::on_bell(NodeId peer, const std::weak_ptr<Conn>& weak) {
  auto conn = weak.lock();
  if (!conn || conn->closed) return;
  conn->channel.rx().woke_up();
  auto poll_until = std::chrono::steady_clock::now() + options_.spin;
  for (;;) {
    auto n = drain(*conn);
    if (!n.ok()) {
      drop_peer(peer, n.error());
      return;
    }
    if (conn->closed) return;
    // The same doorbell also says "the peer freed tx space".
    if (auto it = peers_.find(peer); it != peers_.end()) it->second->space.notify_all();
    auto now = std::chrono::steady_clock::now();
    if (*n > 0) poll_until = now + options_.spin;
    if (now < poll_until) {
      boost::this_fiber::yield();  // other fibers (and, every few picks, epoll) run
      if (conn->closed) return;
      continue;
    }
    if (conn->channel.rx().prepare_sleep()) return;
  }
}

Result<std::size_t> ShmTransport::drain(Conn& conn) {
  ShmRing& rx = conn.channel.rx();
  const std::uint32_t peer = conn.channel.peer().value();
  std::size_t delivered = 0;
  while (!conn.closed) {
    SSI_ASSIGN_OR_RETURN(auto record, rx.peek());
    if (!record) break;
    std::span<const std::byte> rec = *record;
    if (rec.size() < kHeaderSize) {
      return make_error(Errc::kProtocol, fmt::format("shm record of {} bytes is shorter than a "
                                                     "frame header",
                                                     rec.size()));
    }
    FrameHeader h = decode_header(rec.first<kHeaderSize>());
    SSI_TRY(validate_header(h));
    if (h.payload_len != rec.size() - kHeaderSize) {
      return make_error(Errc::kProtocol,
                        fmt::format("frame says {} payload bytes, shm record holds {}",
                                    h.payload_len, rec.size() - kHeaderSize));
    }
    if (h.src != peer || h.dst != self().value()) {
      return make_error(Errc::kProtocol,
                        fmt::format("frame {}->{} on the shm channel {}->{}", h.src, h.dst, peer,
                                    self()));
    }
    Frame f;
    f.header = h;
    if (h.payload_len > 0) f.payload = Payload::copy_of(rec.subspan(kHeaderSize));
    rx.pop();
    if (rx.take_waiting_producer()) SSI_TRY(conn.channel.ring_peer());
    deliver(std::move(f));
    ++delivered;
  }
  return delivered;
}

void ShmTransport::on_socket(NodeId peer, const std::weak_ptr<Conn>& weak) {
  auto conn = weak.lock();
  if (!conn || conn->closed) return;
  auto r = conn->channel.on_socket_event();
  if (r.ok()) return;
  // Frames the peer pushed before it went away still count.
  if (auto d = drain(*conn); !d.ok()) {
    drop_peer(peer, d.error());
    return;
  }
  drop_peer(peer, r.error());
}

void ShmTransport::unwatch(Conn& conn) {
  if (conn.closed) return;
  conn.closed = true;
  reactor().unwatch(conn.channel.bell().fd());
  reactor().unwatch(conn.channel.socket_fd());
}

void ShmTransport::drop_peer(NodeId peer, const Error& why) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  std::shared_ptr<Peer> p = std::move(it->second);
  peers_.erase(it);
  for (auto& c : p->conns) unwatch(*c);
  p->conns.clear();
  p->space.notify_all();
  peer_down(peer, why);
}

void ShmTransport::close_all() {
  if (closed_) return;
  closed_ = true;
  reactor().unwatch(listener_.fd());
  for (auto& [fd, sock] : pending_) reactor().unwatch(fd);
  pending_.clear();
  pending_changed_.notify_all();
  for (auto& [id, p] : peers_) {
    for (auto& c : p->conns) unwatch(*c);
    p->conns.clear();
    p->space.notify_all();
  }
  peers_.clear();
  listener_ = ShmListener{};  // refuse new connections
}

Result<std::unique_ptr<Transport>> make_shm_transport(const TransportConfig& config,
                                                      Reactor& reactor) {
  ShmOptions options;
  if (!config.listen.empty()) {
    if (!config.listen.starts_with(kScheme)) {
      return make_error(Errc::kInvalidArgument,
                        "shm listen address must be 'shm:NAME', got '" + config.listen + "'");
    }
    options.name = config.listen.substr(kScheme.size());
  }
  options.secret = config.secret;
  SSI_ASSIGN_OR_RETURN(auto t, ShmTransport::create(config.self, reactor, std::move(options)));
  return std::unique_ptr<Transport>(std::move(t));
}

}  // namespace ssi::rdma
