// tcp backend specifics the contract suite cannot express: addresses,
// refused dials, and the handshake seen from a raw socket.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "base/secret.hpp"
#include "rdma/codec.hpp"
#include "rdma/factory.hpp"
#include "rdma/fiber_test_util.hpp"
#include "base/unique_fd.hpp"

namespace ssi::rdma {
namespace {

using namespace std::chrono_literals;
using testing::run_bounded;

std::unique_ptr<Transport> make_tcp(Reactor& reactor, std::uint32_t id, std::chrono::milliseconds timeout = 2s,
                                    const MachineSecret& secret = {}) {
  TransportConfig c;
  c.secret = secret;
  c.kind = "tcp";
  c.self = NodeId{id};
  c.listen = "tcp:127.0.0.1:0";
  c.connect_timeout = timeout;
  auto t = make_transport(c, reactor);
  EXPECT_TRUE(t.ok()) << t.error().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

// A blocking socket to `address` with a 2 s receive timeout.
UniqueFd dial_raw(const Address& address) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1))));
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  return fd;
}

// Reads until EOF or timeout; returns the bytes and whether EOF was seen.
std::pair<std::vector<std::byte>, bool> read_all(int fd) {
  std::vector<std::byte> out;
  std::byte buf[512];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return {out, true};
    if (n < 0) return {out, errno == ECONNRESET};
    out.insert(out.end(), buf, buf + n);
  }
}

TEST(Tcp, RejectsMalformedAddresses) {
  auto reactor = Reactor::create().value();
  run_bounded(*reactor, [&] {
    auto t = make_tcp(*reactor, 0);
    for (const char* bad : {"tcp:", "127.0.0.1:80", "tcp:127.0.0.1", "tcp:nohost:1", "tcp:127.0.0.1:99999"}) {
      auto r = t->connect(NodeId{1}, bad);
      ASSERT_FALSE(r.ok()) << bad;
      EXPECT_EQ(r.error().code, Errc::kInvalidArgument) << bad;
    }
    t->shutdown();
  }, 10s);
}

TEST(Tcp, DialToClosedPortFailsWithinTheConnectTimeout) {
  auto reactor = Reactor::create().value();
  run_bounded(*reactor, [&] {
    auto a = make_tcp(*reactor, 0, 300ms);
    auto b = make_tcp(*reactor, 1);
    Address gone = b->local_address();
    b->shutdown();  // nobody listens there now
    auto start = std::chrono::steady_clock::now();
    auto r = a->connect(NodeId{1}, gone);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().sys_errno, ECONNREFUSED) << r.error().to_string();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    auto s = a->send(NodeId{1}, Frame::make(0xf001));
    EXPECT_EQ(s.error().code, Errc::kDisconnected);
    a->shutdown();
  }, 10s);
}

TEST(Tcp, WrongVersionHelloIsAnsweredWithOursThenClosed) {
  auto reactor = Reactor::create().value();
  Address addr;
  std::vector<std::byte> got;
  bool eof = false;
  run_bounded(*reactor, [&] {
    auto t = make_tcp(*reactor, 0);
    addr = t->local_address();
    // The raw client blocks, so it runs on a thread of its own.
    std::thread client([&] {
      UniqueFd fd = dial_raw(addr);
      FrameHeader hello;
      hello.type = kFrameHello;
      hello.version = kProtocolVersion + 1;
      hello.src = 9;
      hello.dst = 0;
      auto bytes = encode_header(hello);
      ASSERT_EQ(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
      std::tie(got, eof) = read_all(fd.get());
    });
    while (!eof && got.empty()) boost::this_fiber::sleep_for(5ms);  // bounded by run_bounded
    client.join();
    t->shutdown();
  }, 10s);
  EXPECT_TRUE(eof) << "the node kept a stream of another protocol version open";
  ASSERT_EQ(got.size(), kHeaderSize);
  FrameHeader h = decode_header(std::span<const std::byte, kHeaderSize>(got.data(), kHeaderSize));
  EXPECT_EQ(h.type, kFrameHello);
  EXPECT_EQ(h.version, kProtocolVersion);
}

TEST(Tcp, FrameBeforeHelloIsRefused) {
  auto reactor = Reactor::create().value();
  std::vector<std::byte> got;
  bool eof = false;
  run_bounded(*reactor, [&] {
    auto t = make_tcp(*reactor, 0);
    std::vector<NodeId> down;
    t->on_peer_down([&](NodeId p, const Error&) { down.push_back(p); });
    std::thread client([&, addr = t->local_address()] {
      UniqueFd fd = dial_raw(addr);
      FrameHeader h;
      h.type = 0xf001;
      h.src = 9;
      auto bytes = encode_header(h);
      ASSERT_EQ(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), ssize_t(bytes.size()));
      std::tie(got, eof) = read_all(fd.get());
    });
    while (!eof && got.empty()) boost::this_fiber::sleep_for(5ms);
    client.join();
    EXPECT_TRUE(down.empty()) << "an unidentified stream is not a peer";
    t->on_peer_down({});
    t->shutdown();
  }, 10s);
  EXPECT_TRUE(eof);
  EXPECT_TRUE(got.empty()) << "no hello for a stream that did not say hello first";
}

// Sends `h` (+ payload) on a raw socket.
void send_raw(int fd, FrameHeader h, std::span<const std::byte> payload = {}) {
  h.payload_len = static_cast<std::uint32_t>(payload.size());
  auto bytes = encode_header(h);
  std::vector<std::byte> all(bytes.begin(), bytes.end());
  all.insert(all.end(), payload.begin(), payload.end());
  ASSERT_EQ(::send(fd, all.data(), all.size(), MSG_NOSIGNAL), ssize_t(all.size()));
}

TEST(Tcp, NodeWithAnotherSecretIsRefused) {
  auto reactor = Reactor::create().value();
  run_bounded(*reactor, [&] {
    auto a = make_tcp(*reactor, 0, 1s, MachineSecret::generate());
    auto b = make_tcp(*reactor, 1, 1s, MachineSecret::generate());
    int received = 0;
    b->on_receive([&](Frame&&) { ++received; });
    auto r = a->connect(NodeId{1}, b->local_address());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("failed authentication"), std::string::npos) << r.error().to_string();
    EXPECT_FALSE(a->send(NodeId{1}, Frame::make(0xf001)).ok());
    EXPECT_EQ(received, 0);
    b->on_receive({});
    a->shutdown();
    b->shutdown();
  }, 10s);
}

// A raw client that claims `claim`: hello with a nonce, then (after the
// node's challenge) a made-up proof and a frame. Returns whether the node
// closed the stream.
bool forge_claim(const Address& addr, std::uint32_t claim, std::uint32_t to) {
  UniqueFd fd = dial_raw(addr);
  FrameHeader h;
  h.type = kFrameHello;
  h.src = claim;
  h.dst = to;
  std::byte nonce[kNonceSize]{};
  send_raw(fd.get(), h, nonce);
  h.type = kFrameHelloProof;
  std::byte proof[kProofSize]{};
  send_raw(fd.get(), h, proof);
  h.type = 0xf001;
  send_raw(fd.get(), h);
  return read_all(fd.get()).second;
}

TEST(Tcp, ForgedHelloIsClosedBeforeAnyFrameIsDelivered) {
  auto reactor = Reactor::create().value();
  run_bounded(*reactor, [&] {
    auto t = make_tcp(*reactor, 0, 1s, MachineSecret::generate());
    int received = 0;
    t->on_receive([&](Frame&&) { ++received; });
    bool closed = false;
    std::thread client([&, addr = t->local_address()] { closed = forge_claim(addr, 7, 0); });
    while (!closed) boost::this_fiber::sleep_for(5ms);  // bounded by run_bounded
    client.join();
    EXPECT_EQ(received, 0) << "a frame of an unauthenticated stream was delivered";
    t->on_receive({});
    t->shutdown();
  }, 10s);
}

TEST(Tcp, SecondStreamClaimingAConnectedNodeIsRefusedNotSwappedIn) {
  auto reactor = Reactor::create().value();
  auto secret = MachineSecret::generate();
  run_bounded(*reactor, [&] {
    auto a = make_tcp(*reactor, 0, 1s, secret);
    auto b = make_tcp(*reactor, 1, 1s, secret);
    std::vector<NodeId> down;
    a->on_peer_down([&](NodeId p, const Error&) { down.push_back(p); });
    ASSERT_TRUE(b->connect(NodeId{0}, a->local_address()).ok());
    b->on_receive([&](Frame&& f) {
      if (f.header.type == 0xf001) (void)b->reply(f.header, Frame::make(0xf002));
    });
    // b's connect returns when b is through the handshake; a may register
    // the stream a moment later. Wait for that (bounded by run_bounded), or
    // the forged claim below could come first and the rpc find no node 1.
    while (!a->send(NodeId{1}, Frame::make(0xf003)).ok()) boost::this_fiber::sleep_for(5ms);
    bool closed = false;
    std::thread client([&, addr = a->local_address()] { closed = forge_claim(addr, 1, 0); });
    while (!closed) boost::this_fiber::sleep_for(5ms);
    client.join();
    auto r = a->rpc(NodeId{1}, Frame::make(0xf001));
    EXPECT_TRUE(r.ok()) << "the real node 1 lost its stream: " << r.error().to_string();
    EXPECT_TRUE(down.empty());
    a->on_peer_down({});
    b->on_receive({});
    a->shutdown();
    b->shutdown();
  }, 10s);
}

}  // namespace
}  // namespace ssi::rdma
