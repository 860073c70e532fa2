// Replayed and duplicated hellos against an in-process tcp transport: a
// raw client that knows the secret gets in (the control), the same bytes
// replayed on a new stream do not.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "base/secret.hpp"
#include "raw_peer.hpp"
#include "rdma/factory.hpp"
#include "rdma/fiber_test_util.hpp"

namespace ssi::adversarial {
namespace {

using rdma::FrameHeader;

std::uint16_t port_of(const rdma::Address& a) {
  return static_cast<std::uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
}

// Reads exactly n bytes within 5 s; false on EOF or timeout.
bool read_exactly(int fd, std::byte* out, std::size_t n) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (std::size_t got = 0; got < n;) {
    ssize_t r = ::recv(fd, out + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}

struct Recording {
  Nonce nonce{};
  Proof proof{};
};

// Claims node 1 towards node 0 with `nonce`; answers the challenge with
// `secret` unless `replay` gives the proof to send. Then sends a test frame.
// Returns whether the node closed the stream.
bool claim_node_1(std::uint16_t port, const MachineSecret& secret, Recording& rec, bool replay) {
  UniqueFd fd = dial_tcp(port);
  FrameHeader h;
  h.type = rdma::kFrameHello;
  h.src = 1;
  h.dst = 0;
  send_frame(fd.get(), h, rec.nonce);
  std::byte answer[rdma::kHeaderSize + kNonceSize + kProofSize];
  if (!read_exactly(fd.get(), answer, sizeof answer)) return true;
  if (!replay) {
    AuthTranscript t{"tcp", 1, 0, rec.nonce, {}};
    std::memcpy(t.acceptor_nonce.data(), answer + rdma::kHeaderSize, kNonceSize);
    rec.proof = secret.prove(AuthRole::kDialer, t);
  }
  h.type = rdma::kFrameHelloProof;
  send_frame(fd.get(), h, rec.proof);
  h.type = 0xf001;
  send_frame(fd.get(), h);
  return closed_within(fd.get(), replay ? std::chrono::milliseconds(5000) : std::chrono::milliseconds(300));
}

TEST(Replay, RecordedHandshakeReplayedOnANewStreamIsRefused) {
  auto reactor = rdma::Reactor::create().value();
  auto secret = MachineSecret::generate();
  int delivered_first = 0, delivered_replay = 0;
  bool first_closed = true, replay_closed = false;
  rdma::testing::run_bounded(*reactor, [&] {
    rdma::TransportConfig c;
    c.kind = "tcp";
    c.self = NodeId{0};
    c.listen = "tcp:127.0.0.1:0";
    c.secret = secret;
    auto t = std::move(rdma::make_transport(c, *reactor)).value();
    int* counter = &delivered_first;
    t->on_receive([&](rdma::Frame&&) { ++*counter; });
    Recording rec{random_nonce(), {}};
    std::uint16_t port = port_of(t->local_address());
    bool done = false;
    std::thread client([&] { first_closed = claim_node_1(port, secret, rec, false); done = true; });
    while (!done) boost::this_fiber::sleep_for(std::chrono::milliseconds(5));
    client.join();
    // Let the node see the first stream go before the replay claims node 1.
    boost::this_fiber::sleep_for(std::chrono::milliseconds(100));
    counter = &delivered_replay;
    done = false;
    std::thread replayer([&] { replay_closed = claim_node_1(port, secret, rec, true); done = true; });
    while (!done) boost::this_fiber::sleep_for(std::chrono::milliseconds(5));
    replayer.join();
    t->on_receive({});
    t->shutdown();
  }, std::chrono::seconds(20));
  EXPECT_FALSE(first_closed) << "the control: a client with the secret must get in";
  EXPECT_EQ(delivered_first, 1);
  EXPECT_TRUE(replay_closed) << "a replayed handshake was accepted";
  EXPECT_EQ(delivered_replay, 0);
}

TEST(Replay, SecondHelloOnAnAuthenticatedStreamClosesIt) {
  auto reactor = rdma::Reactor::create().value();
  bool closed = false;
  rdma::testing::run_bounded(*reactor, [&] {
    rdma::TransportConfig c;
    c.kind = "tcp";
    c.self = NodeId{0};
    c.listen = "tcp:127.0.0.1:0";
    auto t = std::move(rdma::make_transport(c, *reactor)).value();
    std::uint16_t port = port_of(t->local_address());
    bool done = false;
    std::thread client([&] {
      UniqueFd fd = dial_tcp(port);
      FrameHeader h;
      h.type = rdma::kFrameHello;
      h.src = 1;
      Nonce nonce = random_nonce();
      send_frame(fd.get(), h, nonce);
      send_frame(fd.get(), h, nonce);  // the duplicate, before and after the challenge
      closed = closed_within(fd.get(), std::chrono::milliseconds(5000));
      done = true;
    });
    while (!done) boost::this_fiber::sleep_for(std::chrono::milliseconds(5));
    client.join();
    t->shutdown();
  }, std::chrono::seconds(20));
  EXPECT_TRUE(closed);
}

}  // namespace
}  // namespace ssi::adversarial
