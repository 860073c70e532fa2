#include "rdma/shm_channel.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include <openssl/crypto.h>

namespace ssi::rdma {

namespace {

constexpr std::uint32_t kHelloMagic = 0x4c454853;  // "SHEL"
constexpr std::uint16_t kHelloVersion = 2;  // 2: proofs of the machine secret
enum class HelloKind : std::uint16_t { kHello = 1, kAck = 2, kNack = 3 };

// The only message on the rendezvous socket besides the ack/nack.
struct Hello {
  std::uint32_t magic = kHelloMagic;
  std::uint16_t version = kHelloVersion;
  HelloKind kind = HelloKind::kHello;
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint32_t slots = 0;
  std::uint32_t capacity = 0;
  // kHello: the connector's nonce and proof; kAck: the acceptor's proof
  // over the same nonce (base/secret.hpp, channel "shm").
  Nonce nonce{};
  Proof proof{};
};

// One message each way suffices here, unlike tcp: nobody but root can
// record a Unix socket's traffic to replay it, and the listener refuses a
// nonce it has seen (ShmListener::seen_).
AuthTranscript transcript(const Hello& hello) {
  return {"shm", hello.src, hello.dst, hello.nonce, {}};
}
constexpr std::size_t kFdsInHello = 3;  // memfd, connector's bell, acceptor's bell

constexpr std::size_t round_page(std::size_t n) { return (n + 4095) / 4096 * 4096; }

Result<sockaddr_un> abstract_address(std::string_view name, socklen_t* len) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = "ssi-shm-" + std::string(name);
  if (path.size() + 1 > sizeof(addr.sun_path)) {
    return make_error(Errc::kInvalidArgument, "shm name too long: " + std::string(name));
  }
  std::memcpy(addr.sun_path + 1, path.data(), path.size());  // leading NUL: abstract
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + path.size());
  return addr;
}

Result<void> send_hello(int sock, const Hello& h, std::span<const int> fds) {
  iovec iov{const_cast<Hello*>(&h), sizeof h};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kFdsInHello)> control{};
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof h)) {
    return Error::from_errno("sendmsg shm hello");
  }
  return ok();
}

// Receives one hello and owns whatever fds came with it, so none leak.
Result<Hello> recv_hello(int sock, std::vector<UniqueFd>* fds) {
  Hello h;
  iovec iov{&h, sizeof h};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kFdsInHello)> control{};
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) return Error::from_errno("recvmsg shm hello");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      fds->emplace_back(fd);
    }
  }
  if (n == 0) return make_error(Errc::kDisconnected, "shm peer closed the rendezvous socket");
  if (n != sizeof h || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    return make_error(Errc::kProtocol, "malformed shm hello (" + std::to_string(n) + " bytes)");
  }
  if (h.magic != kHelloMagic) return make_error(Errc::kProtocol, "shm hello has a wrong magic");
  if (h.version != kHelloVersion) {
    return make_error(Errc::kVersionMismatch,
                      "shm hello version " + std::to_string(h.version) + ", we speak " +
                          std::to_string(kHelloVersion));
  }
  return h;
}

Result<void> wait_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (r < 0) return Error::from_errno("poll shm rendezvous socket");
  if (r == 0) return make_error(Errc::kTimeout, "no shm hello within the deadline");
  return ok();
}

}  // namespace

Result<ShmChannel> ShmChannel::connect(std::string_view name, NodeId self, NodeId peer,
                                       ShmRing::Layout layout, const MachineSecret& secret) {
  socklen_t len = 0;
  SSI_ASSIGN_OR_RETURN(sockaddr_un addr, abstract_address(name, &len));
  ShmChannel ch;
  ch.sock_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!ch.sock_) return Error::from_errno("socket for shm rendezvous");
  if (::connect(ch.sock_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return Error::from_errno("connect to shm listener " + std::string(name));
  }
  std::size_t ring_bytes = round_page(ShmRing::bytes_needed(layout));
  SSI_ASSIGN_OR_RETURN(ch.mem_, SharedMemory::create("ssi-shm-rings", 2 * ring_bytes));
  // Ring 0 carries connector -> acceptor, ring 1 the other way.
  SSI_ASSIGN_OR_RETURN(ch.tx_, ShmRing::create(ch.mem_.bytes().first(ring_bytes), layout));
  SSI_ASSIGN_OR_RETURN(ch.rx_, ShmRing::create(ch.mem_.bytes().subspan(ring_bytes), layout));
  SSI_ASSIGN_OR_RETURN(ch.my_bell_, Doorbell::create());
  SSI_ASSIGN_OR_RETURN(ch.peer_bell_, Doorbell::create());
  Hello h;
  h.src = self.value();
  h.dst = peer.value();
  h.slots = layout.slots;
  h.capacity = layout.capacity;
  h.nonce = random_nonce();
  h.proof = secret.prove(AuthRole::kDialer, transcript(h));
  ch.expected_ack_ = secret.prove(AuthRole::kAcceptor, transcript(h));
  std::array<int, kFdsInHello> fds{ch.mem_.fd(), ch.my_bell_.fd(), ch.peer_bell_.fd()};
  SSI_TRY(send_hello(ch.sock_.get(), h, fds));
  ch.self_ = self;
  ch.peer_ = peer;
  ch.initiator_ = true;
  return ch;
}

Result<void> ShmChannel::on_socket_event() {
  std::vector<UniqueFd> stray;
  auto h = recv_hello(sock_.get(), &stray);
  if (!h.ok()) {
    if (h.error().sys_errno == EAGAIN) return ok();  // spurious wake-up
    if (h.error().sys_errno == ECONNRESET) {
      return make_error(Errc::kDisconnected, "shm peer reset the liveness socket");
    }
    return std::move(h).error();
  }
  if (h->kind == HelloKind::kAck && !acked_ && h->src == peer_.value()) {
    if (CRYPTO_memcmp(h->proof.data(), expected_ack_.data(), kProofSize) != 0)
      return make_error(Errc::kProtocol, "shm peer failed authentication (not a node of this machine)");
    acked_ = true;
    return ok();
  }
  if (h->kind == HelloKind::kNack) {
    return make_error(Errc::kProtocol, "shm peer rejected the connection");
  }
  return make_error(Errc::kProtocol, "unexpected shm control message (kind " +
                                         std::to_string(static_cast<int>(h->kind)) +
                                         ", src " + std::to_string(h->src) + ")");
}

Result<ShmListener> ShmListener::listen(std::string name, const MachineSecret& secret) {
  socklen_t len = 0;
  SSI_ASSIGN_OR_RETURN(sockaddr_un addr, abstract_address(name, &len));
  ShmListener l;
  l.fd_ = UniqueFd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l.fd_) return Error::from_errno("socket for shm listener");
  if (::bind(l.fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return Error::from_errno("bind shm listener @ssi-shm-" + name);
  }
  if (::listen(l.fd_.get(), 64) != 0) return Error::from_errno("listen shm listener");
  l.name_ = std::move(name);
  l.secret_ = secret;
  return l;
}

std::string ShmListener::unique_name() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  return std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string(rd() % 1000000);
}

std::optional<UniqueFd> ShmListener::accept_socket(Error* error) {
  UniqueFd sock(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (sock) return sock;
  if (errno != EAGAIN && errno != EWOULDBLOCK) *error = Error::from_errno("accept shm connection");
  return std::nullopt;
}

Result<std::optional<ShmChannel>> ShmListener::accept(NodeId self,
                                                      std::chrono::milliseconds hello_wait) {
  Error error{Errc::kOk, {}, 0};
  auto sock = accept_socket(&error);
  if (!sock) {
    if (error.code != Errc::kOk) return error;
    return std::optional<ShmChannel>{};
  }
  SSI_TRY(wait_readable(sock->get(), hello_wait));
  SSI_ASSIGN_OR_RETURN(auto ch, handshake(std::move(*sock), self));
  return std::optional<ShmChannel>(std::move(ch));
}

Result<ShmChannel> ShmListener::handshake(UniqueFd sock, NodeId self) {
  std::vector<UniqueFd> fds;
  auto reject = [&](Error e) -> Error {
    Hello nack;
    nack.kind = HelloKind::kNack;
    nack.src = self.value();
    (void)send_hello(sock.get(), nack, {});
    return e;
  };
  auto h = recv_hello(sock.get(), &fds);
  if (!h.ok()) return reject(std::move(h).error());
  if (h->kind != HelloKind::kHello || fds.size() != kFdsInHello) {
    return reject(make_error(Errc::kProtocol, "shm hello without its 3 file descriptors"));
  }
  if (h->dst != self.value()) {
    return reject(make_error(Errc::kProtocol, "shm hello for node " + std::to_string(h->dst) +
                                                  " reached node " +
                                                  std::to_string(self.value())));
  }
  ucred cred{};
  socklen_t cred_len = sizeof cred;
  if (::getsockopt(sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0 || cred.uid != ::getuid())
    return reject(make_error(Errc::kProtocol, "shm hello from another user (uid " + std::to_string(cred.uid) + ")"));
  if (!secret_.check(AuthRole::kDialer, transcript(*h), h->proof) || !seen_.insert(h->nonce).second)
    return reject(make_error(Errc::kProtocol, "shm hello claiming node " + std::to_string(h->src) +
                                                  " failed authentication"));
  ShmRing::Layout layout{h->slots, h->capacity};
  std::size_t ring_bytes = round_page(ShmRing::bytes_needed(layout));
  ShmChannel ch;
  auto mem = SharedMemory::attach(std::move(fds[0]), 2 * ring_bytes);
  if (!mem.ok()) return reject(std::move(mem).error());
  ch.mem_ = std::move(mem).value();
  auto rx = ShmRing::attach(ch.mem_.bytes().first(ring_bytes));
  auto tx = ShmRing::attach(ch.mem_.bytes().subspan(ring_bytes, ring_bytes));
  if (!rx.ok()) return reject(std::move(rx).error());
  if (!tx.ok()) return reject(std::move(tx).error());
  ch.rx_ = *rx;
  ch.tx_ = *tx;
  ch.peer_bell_ = Doorbell::adopt(std::move(fds[1]));
  ch.my_bell_ = Doorbell::adopt(std::move(fds[2]));
  Hello ack;
  ack.kind = HelloKind::kAck;
  ack.src = self.value();
  ack.dst = h->src;
  ack.proof = secret_.prove(AuthRole::kAcceptor, transcript(*h));
  if (auto r = send_hello(sock.get(), ack, {}); !r.ok()) {
    // A connector that already left may still have published frames: keep
    // the channel; the closed socket reports the departure right after.
    if (r.error().sys_errno != EPIPE && r.error().sys_errno != ECONNRESET) return r.error();
  }
  ch.sock_ = std::move(sock);
  ch.self_ = self;
  ch.peer_ = NodeId{h->src};
  ch.initiator_ = false;
  ch.acked_ = true;
  return ch;
}

}  // namespace ssi::rdma
