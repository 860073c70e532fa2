// tcp instance of the transport contract suite: N transports on 127.0.0.1,
// all pairs dialing each other at once (exercises the simultaneous-connect
// rule), and raw sockets for bad input.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include <boost/fiber/operations.hpp>

#include "cluster_fixture.hpp"
#include "rdma/codec.hpp"
#include "rdma/factory.hpp"
#include "base/secret.hpp"
#include "base/unique_fd.hpp"

namespace ssi::rdma::testing {
namespace {

class TcpCluster : public ClusterFixture {
 public:
  Result<Nodes> build(std::size_t n, Reactor& reactor, std::uint64_t) override {
    SSI_ASSIGN_OR_RETURN(auto nodes, make_nodes(n, [&](NodeId id) {
                           TransportConfig config;
                           config.kind = "tcp";
                           config.self = id;
                           config.listen = "tcp:127.0.0.1:0";
                           return make_transport(config, reactor);
                         }));
    SSI_TRY(connect_all(nodes, Dial::kAllAtOnce));  // exercises the simultaneous-dial rule
    addresses_ = addresses_of(nodes);
    return nodes;
  }

  Result<void> inject_raw(std::size_t to, NodeId fake, std::span<const std::byte> bytes) override;

 private:
  std::vector<Address> addresses_;
};

// Reads n bytes without blocking the reactor thread this runs on (the
// node answering us lives there too).
Result<void> recv_exactly(int fd, std::byte* out, std::size_t n) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (std::size_t got = 0; got < n;) {
    ssize_t r = ::recv(fd, out + got, n - got, MSG_DONTWAIT);
    if (r == 0) return make_error(Errc::kDisconnected, "node closed the stream during the handshake");
    if (r > 0) got += static_cast<std::size_t>(r);
    if (std::chrono::steady_clock::now() > until) return make_error(Errc::kTimeout, "no answer to our hello");
    if (r < 0) boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  }
  return ok();
}

Result<void> send_all(int fd, FrameHeader h, std::span<const std::byte> payload) {
  h.payload_len = static_cast<std::uint32_t>(payload.size());
  std::vector<std::byte> out;
  auto head = encode_header(h);
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), payload.begin(), payload.end());
  if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
    return Error::from_errno("send");
  return ok();
}

// Opens a socket to `address`, completes the handshake as `fake` (the
// fixture's nodes use the default secret, which we know), writes `bytes`,
// ends the stream, then waits (bounded) until the node closes its side.
Result<void> raw_session(const Address& address, NodeId fake, NodeId to, std::span<const std::byte> bytes) {
  auto colon = address.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1))));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::from_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return Error::from_errno("connect " + address);
  FrameHeader hello;
  hello.type = kFrameHello;
  hello.src = fake.value();
  hello.dst = to.value();
  AuthTranscript t{"tcp", fake.value(), to.value(), random_nonce(), {}};
  SSI_TRY(send_all(fd.get(), hello, t.dialer_nonce));
  std::byte answer[kHeaderSize + kNonceSize + kProofSize];
  SSI_TRY(recv_exactly(fd.get(), answer, sizeof answer));
  std::memcpy(t.acceptor_nonce.data(), answer + kHeaderSize, kNonceSize);
  hello.type = kFrameHelloProof;
  SSI_TRY(send_all(fd.get(), hello, MachineSecret{}.prove(AuthRole::kDialer, t)));
  if (::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
    return Error::from_errno("send");
  ::shutdown(fd.get(), SHUT_WR);
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::byte buf[4096];
  while (std::chrono::steady_clock::now() < until) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return ok();
    if (n < 0) boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
  }
  return make_error(Errc::kTimeout, "node kept the bad stream open");
}

Result<void> TcpCluster::inject_raw(std::size_t to, NodeId fake, std::span<const std::byte> bytes) {
  return raw_session(addresses_.at(to), fake, NodeId{static_cast<std::uint32_t>(to)}, bytes);
}

INSTANTIATE_TEST_SUITE_P(Tcp, TransportContract,
                         ::testing::Values(ContractBackend{
                             "tcp", [] { return std::make_unique<TcpCluster>(); }}),
                         ContractBackend::name_of);

}  // namespace
}  // namespace ssi::rdma::testing
